import { afterAll, beforeAll, test } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { appendEvents, withTenant, type Knex } from "@promptcraft/db";
import { listConsumers, runEventConsumer, logEnd, type LogEvent } from "@promptcraft/platform";
import { openTestKnex } from "@promptcraft/testing";
import { eventsCommand } from "./events.js";

// On the migrated test database (DATABASE_URL, either engine).
let db: Knex;
beforeAll(() => {
  db = openTestKnex("promptcraft-cli-events-test");
});
afterAll(async () => {
  await db.destroy();
});

async function run(...args: string[]): Promise<{ code: number; lines: string[] }> {
  const lines: string[] = [];
  const code = await eventsCommand(args, process.env.DATABASE_URL!, (l) => lines.push(l));
  return { code, lines };
}

test("events replay resets a consumer's checkpoint so that it handles the events after it again; events list shows it", async () => {
  const name = `cli.replay.${randomUUID().slice(0, 8)}`;
  const tenantId = randomUUID();
  const start = await logEnd({ db, service: "graph" });
  assert.equal((await run("replay", "--consumer", name, "--from", "end")).code, 0);
  for (const type of ["content.entity.created", "content.entity.updated"]) {
    await withTenant(db, { service: "content", tenantId }, (trx) => appendEvents(trx, [{ tenantId, aggregateType: "entity", eventType: type, actorType: "system" }]));
  }
  const consume = async (): Promise<LogEvent[]> => {
    const seen: LogEvent[] = [];
    const stop = new AbortController();
    const done = runEventConsumer({ db, service: "graph", name, pollIntervalMs: 20, signal: stop.signal, handle: async (events) => void seen.push(...events.filter((e) => e.tenantId === tenantId)) });
    for (let i = 0; i < 1000 && seen.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
    stop.abort();
    await done;
    return seen;
  };
  assert.equal((await consume()).length, 2);
  const listed = (await run("list")).lines.map((l) => JSON.parse(l) as { consumer: string; checkpoint: string; active: boolean });
  const mine = listed.find((c) => c.consumer === name);
  assert.ok(mine, "listed");
  assert.equal(mine.active, false, "the lease was released on stop");
  assert.notEqual(mine.checkpoint, `${start.transactionId}-0`, "the checkpoint moved");

  // Replay from the start position taken before the events: both come again.
  const replay = await run("replay", "--consumer", name, "--from", `${start.transactionId}-${start.id}`);
  assert.deepEqual(replay, { code: 0, lines: [JSON.stringify({ consumer: name, checkpoint: `${start.transactionId}-0` })] });
  assert.deepEqual((await consume()).map((e) => e.eventType), ["content.entity.created", "content.entity.updated"]);
  assert.ok((await listConsumers(db, "analytics")).some((c) => c.name === name));
});

test("events refuses bad arguments with exit code 2", async () => {
  assert.equal((await run("nope")).code, 2);
  assert.equal((await run("replay", "--consumer", "x")).code, 2);
  assert.equal((await run("replay", "--consumer", "x", "--from", "12")).code, 2);
  assert.equal((await run("replay", "--consumer", "Bad Name", "--from", "start")).code, 2);
});
