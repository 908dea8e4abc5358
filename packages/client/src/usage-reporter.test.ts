import { describe, test } from "vitest";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { UsageKind } from "@promptcraft/proto/promptcraft/analytics/v1/resources_pb";
import { UsageReporter, uuidv7 } from "./usage-reporter.js";

/** A port nothing listens on (bound, then released). */
async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe("UsageReporter", () => {
  test("analytics unreachable: events wait in the bounded buffer; past it they are dropped, counted and logged; close counts the rest as lost", async () => {
    const warnings: { obj: object; msg: string }[] = [];
    let dropped = 0;
    const reporter = new UsageReporter({
      analyticsUrl: `http://127.0.0.1:${await deadPort()}`,
      serviceToken: "x".repeat(32),
      serviceName: "test",
      maxBuffered: 100,
      retryMinMs: 10,
      retryMaxMs: 20,
      log: { warn: (obj, msg) => warnings.push({ obj, msg }), info: () => {} },
      counters: { dropped: { inc: (n = 1) => void (dropped += n) } },
    });
    for (let i = 0; i < 150; i++) reporter.report({ kind: UsageKind.VIEW, tenantId: "00000000-0000-4000-8000-000000000001" });
    assert.equal(reporter.pending, 100);
    assert.equal(dropped, 50);
    // The next stream attempt logs the drops, then its failure.
    for (let i = 0; i < 300 && reporter.totals.failedStreams === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(warnings.some((w) => /dropped/.test(w.msg) && (w.obj as { dropped: number }).dropped === 50), JSON.stringify(warnings));
    assert.ok(warnings.some((w) => /stream to analytics failed/.test(w.msg)));
    await reporter.close(50);
    assert.equal(dropped, 150, "what was still pending at shutdown is counted as lost");
    assert.ok(warnings.some((w) => /lost/.test(w.msg)));
    reporter.report({ kind: UsageKind.VIEW });
    assert.equal(dropped, 151, "after close, events are refused and counted");
  });

  test("uuidv7: version 7, RFC 4122 variant, time-ordered", () => {
    const a = uuidv7(1_700_000_000_000);
    const b = uuidv7(1_700_000_000_001);
    assert.match(a, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.ok(a < b);
    assert.equal(a.slice(0, 13), "018bcfe5-6800");
  });
});
