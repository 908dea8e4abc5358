import { test, describe } from "vitest";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import { briefError, LogThrottle } from "./log-throttle.js";

function capture() {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: "info" }, { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { log, lines };
}

describe("LogThrottle", () => {
  test("the first occurrence is logged, repeats are counted into one summary", () => {
    const { log, lines } = capture();
    const quiet = new LogThrottle(log, { windowMs: 60_000 });
    for (let i = 0; i < 100; i++) quiet.write("warn", "db", { attempt: i }, "database down");
    quiet.write("warn", "identity", {}, "identity down");
    assert.deepEqual(lines.map((l) => [l.msg, l.attempt]), [["database down", 0], ["identity down", undefined]]);
    quiet.flush();
    const summary = lines.find((l) => l.msg === "database down (repeated)");
    assert.equal(summary?.repeats, 99);
    assert.equal(summary?.attempt, 99, "with the latest occurrence's fields");
    assert.equal(lines.length, 3, "a key without repeats has no summary");
    // After a flush, the next occurrence is logged in full again.
    quiet.write("warn", "db", { attempt: 100 }, "database down");
    assert.equal(lines.at(-1)?.attempt, 100);
  });

  test("while repeats go on, one summary per window; a quiet window forgets the key", async () => {
    const { log, lines } = capture();
    const quiet = new LogThrottle(log, { windowMs: 20 });
    quiet.write("warn", "k", {}, "m");
    quiet.write("warn", "k", {}, "m");
    for (let i = 0; i < 200 && !lines.some((l) => l.repeats === 1); i++) await sleep(10);
    assert.deepEqual(lines.map((l) => [l.msg, l.repeats]), [["m", undefined], ["m (repeated)", 1]]);
    // Nothing more happens, so the key is dropped after a window and logged in full next time.
    await sleep(60);
    quiet.write("warn", "k", {}, "m");
    assert.deepEqual(lines.at(-1)?.repeats, undefined);
    quiet.flush();
  });
});

describe("briefError", () => {
  test("message, cause and string code, without the stack", () => {
    const cause = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });
    assert.deepEqual(briefError(new Error("database unavailable", { cause })), { type: "Error", message: "database unavailable: connect ECONNREFUSED 127.0.0.1:5432" });
    assert.deepEqual(briefError(cause), { type: "Error", message: "connect ECONNREFUSED 127.0.0.1:5432", code: "ECONNREFUSED" });
    assert.deepEqual(briefError(new Error("Acquire connection error: Error: x\n    at a (b.js:1:1)")), { type: "Error", message: "Acquire connection error: Error: x" });
  });
});
