import { afterAll, beforeAll, describe, test } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { appendEvents, withTenant, type Knex } from "@promptcraft/db";
import { openTestKnex, whileOtherDatabaseWrites } from "@promptcraft/testing";
import client from "prom-client";
import {
  compareCursors,
  followEvents,
  formatCursor,
  LOG_START,
  logEnd,
  parseCursor,
  readEvents,
  resetConsumer,
  runEventConsumer,
  type ConsumerState,
  type EventCursor,
  type LogEvent,
} from "./event-log.js";

test("cursors are the pair (transaction_id, id) in text, compared in that order", () => {
  assert.deepEqual(parseCursor("123-45"), { transactionId: 123n, id: 45n });
  assert.equal(formatCursor({ transactionId: 9n, id: 0n }), "9-0");
  for (const bad of ["", "12", "12-", "-1-2", "a-b", "1-2-3", "99999999999999999999-1"]) assert.equal(parseCursor(bad), undefined, bad);
  assert.equal(compareCursors({ transactionId: 2n, id: 1n }, { transactionId: 1n, id: 9n }), 1);
  assert.equal(compareCursors({ transactionId: 1n, id: 1n }, { transactionId: 1n, id: 2n }), -1);
  assert.equal(compareCursors(LOG_START, LOG_START), 0);
});

describe("event-log reader (on the test database)", () => {
  const embedded = process.env.PROMPTCRAFT_TEST_DB_KIND === "embedded";
  let db: Knex;
  beforeAll(() => {
    db = openTestKnex("promptcraft-event-log-test");
  });
  afterAll(async () => {
    await db.destroy();
  });

  const append = (tenantId: string, eventType: string, trxOrDb: Knex = db) =>
    withTenant(trxOrDb, { service: "content", tenantId }, (trx) => appendEvents(trx, [{ tenantId, aggregateType: "entity", eventType, actorType: "system" }]));

  /** Every event of `tenantId` after `from`, following the log until `count` arrived. */
  async function collect(tenantId: string, from: EventCursor, count: number): Promise<LogEvent[]> {
    const stop = new AbortController();
    const got: LogEvent[] = [];
    for await (const batch of followEvents({ db, service: "analytics", tenantId, pollIntervalMs: 20, signal: stop.signal }, from)) {
      got.push(...batch.events);
      if (got.length >= count) stop.abort();
    }
    return got;
  }

  test("a tenant's read sees only its events, in commit order, and an idle read moves the cursor to the horizon", async () => {
    const [a, b] = [randomUUID(), randomUUID()];
    await append(a, "content.entity.created");
    await append(b, "content.entity.created");
    await append(a, "content.entity.updated");
    const got = await collect(a, LOG_START, 2);
    assert.deepEqual(got.map((e) => e.eventType), ["content.entity.created", "content.entity.updated"]);
    assert.ok(got.every((e) => e.tenantId === a));
    const idle = await readEvents({ db, service: "analytics", tenantId: a }, { transactionId: got[1]!.transactionId, id: got[1]!.id });
    assert.equal(idle.events.length, 0);
    assert.ok(compareCursors(idle.next, { transactionId: got[1]!.transactionId, id: got[1]!.id }) > 0, "cursor moved up to the horizon");
  });

  test("a late commit is never skipped: events committed after an open transaction wait for it, then come in commit order", async () => {
    const tenant = randomUUID();
    const start = (await readEvents({ db, service: "analytics", tenantId: tenant }, LOG_START)).next;
    if (embedded) {
      // The embedded engine serialises sessions: no transaction can stay open while another commits.
      // The hazard left is ids out of commit order: reserve an id, commit a later one, then commit
      // the reserved one. A reader by id would pass it; the pair cursor delivers both.
      const { rows } = await db.raw<{ rows: { id: string }[] }>("select nextval('event_id_seq')::text as id");
      await append(tenant, "content.entity.created");
      await withTenant(db, { service: "content", tenantId: tenant }, (trx) =>
        trx("event").insert({ tenant_id: tenant, id: rows[0]!.id, aggregate_type: "entity", event_type: "content.entity.updated", actor_type: "system" }),
      );
      const got = await collect(tenant, start, 2);
      assert.deepEqual(got.map((e) => e.eventType), ["content.entity.created", "content.entity.updated"]);
      assert.ok(got[1]!.id < got[0]!.id, "the second commit holds the smaller id");
      return;
    }
    const holder = openTestKnex("promptcraft-event-log-holder");
    try {
      let release!: () => void;
      const released = new Promise<void>((r) => (release = r));
      let inserted!: () => void;
      const insertedP = new Promise<void>((r) => (inserted = r));
      const held = withTenant(holder, { service: "content", tenantId: tenant }, async (trx) => {
        await appendEvents(trx, [{ tenantId: tenant, aggregateType: "entity", eventType: "content.entity.created", actorType: "system" }]);
        inserted();
        await released;
      });
      await insertedP;
      await append(tenant, "content.entity.updated");
      await append(tenant, "content.entity.deleted");
      // Committed, but behind the open transaction: not readable yet.
      const early = await readEvents({ db, service: "analytics", tenantId: tenant }, start);
      assert.equal(early.events.length, 0, "nothing is delivered past an open writer");
      const cross = await readEvents({ db, service: "analytics" }, early.next);
      assert.ok(!cross.events.some((e) => e.tenantId === tenant), "nor through the cross-tenant read");
      release();
      await held;
      const got = await collect(tenant, start, 3);
      assert.deepEqual(got.map((e) => e.eventType), ["content.entity.created", "content.entity.updated", "content.entity.deleted"]);
      assert.ok(got[0]!.id < got[1]!.id);
    } finally {
      await holder.destroy();
    }
  });

  test.skipIf(embedded)(
    "a writing transaction in another database of the server does not hold this database's readers (the embedded engine has one database)",
    async () => {
      const tenant = randomUUID();
      const start = (await readEvents({ db, service: "analytics", tenantId: tenant }, LOG_START)).next;
      await whileOtherDatabaseWrites(async () => {
        await append(tenant, "content.entity.created");
        const read = await readEvents({ db, service: "analytics", tenantId: tenant }, start);
        assert.deepEqual(read.events.map((e) => e.eventType), ["content.entity.created"], "delivered while the other database's transaction is open");
        const cross = await readEvents({ db, service: "analytics" }, start);
        assert.ok(cross.events.some((e) => e.tenantId === tenant), "through the cross-tenant read too");
      });
    },
  );

  /** Runs a consumer of `name` keeping the events of `tenant`, until `stop` aborts. */
  function consumer(name: string, tenant: string, stop: AbortController, seen: LogEvent[], registry?: client.Registry) {
    const state: ConsumerState = { active: false, checkpoint: LOG_START, delivered: 0 };
    const done = runEventConsumer(
      {
        db,
        service: "graph",
        name,
        pollIntervalMs: 20,
        leaseMs: 3000,
        batchSize: 50,
        signal: stop.signal,
        registry,
        handle: async (events) => void seen.push(...events.filter((e) => e.tenantId === tenant)),
      },
      state,
    );
    return { state, done };
  }

  async function until(what: string, check: () => boolean): Promise<void> {
    for (let i = 0; i < 3000 && !check(); i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(check(), `timed out waiting until ${what}`);
  }

  test("a restarted consumer resumes after its durable checkpoint", async () => {
    const tenant = randomUUID();
    const name = `test.resume.${randomUUID().slice(0, 8)}`;
    await resetConsumer(db, "graph", name, await logEnd({ db, service: "graph" }));
    for (const t of ["a", "b", "c"]) await append(tenant, `content.entity.${t}`);
    const seen1: LogEvent[] = [];
    const stop1 = new AbortController();
    const registry = new client.Registry();
    const first = consumer(name, tenant, stop1, seen1, registry);
    await until("the first run handled 3 events", () => seen1.length === 3);
    const third = seen1[2]!;
    await until("the checkpoint passed them", () => compareCursors(first.state.checkpoint, third) >= 0);
    assert.match(await registry.metrics(), /event_log_consumer_delivered_total\{consumer="test\.resume\.[^"]+"\} [1-9]/);
    stop1.abort();
    await first.done;
    for (const t of ["d", "e"]) await append(tenant, `content.entity.${t}`);
    const seen2: LogEvent[] = [];
    const stop2 = new AbortController();
    const second = consumer(name, tenant, stop2, seen2);
    await until("the second run handled 2 events", () => seen2.length >= 2);
    stop2.abort();
    await second.done;
    assert.deepEqual(seen2.map((e) => e.eventType), ["content.entity.d", "content.entity.e"]);
  });

  test("two readers of one consumer: one is active, the other takes over when it stops", async () => {
    const tenant = randomUUID();
    const name = `test.lease.${randomUUID().slice(0, 8)}`;
    await resetConsumer(db, "graph", name, await logEnd({ db, service: "graph" }));
    const [seenA, seenB] = [[] as LogEvent[], [] as LogEvent[]];
    const [stopA, stopB] = [new AbortController(), new AbortController()];
    const a = consumer(name, tenant, stopA, seenA);
    await until("A is active", () => a.state.active);
    const b = consumer(name, tenant, stopB, seenB);
    for (const t of ["a", "b", "c"]) await append(tenant, `content.entity.${t}`);
    await until("A handled 3 events", () => seenA.length === 3);
    // Longer than B's retry period (lease/3): B had its chances and stayed standby.
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(a.state.active, true);
    assert.equal(b.state.active, false);
    assert.equal(seenB.length, 0);
    stopA.abort();
    await a.done;
    await append(tenant, "content.entity.d");
    await until("B took over and handled the new event", () => seenB.length === 1);
    assert.equal(seenB[0]!.eventType, "content.entity.d", "B resumed after A's checkpoint");
    stopB.abort();
    await b.done;
  });
});
