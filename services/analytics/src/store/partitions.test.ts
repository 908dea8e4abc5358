import { afterAll, beforeAll, describe, test } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { withServiceRole, type Knex } from "@promptcraft/db";
import { AbortedError, OutOfRangeError } from "@promptcraft/platform";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import { openTestKnex } from "@promptcraft/testing";
import { checkNotExpired } from "../domain/audit.js";
import * as partitions from "../domain/partitions.js";
import { eventLogExpiry } from "./events.js";
import * as store from "./partitions.js";

/*
 * Store tier: the SQL of store/partitions.ts and the maintenance run of domain/partitions.ts on the
 * test runner's database. Other test files' analytics services run maintenance as of the real time
 * at the same moment, so these runs are as of a later `now`: what they drop, no real-time run would.
 * Planted partitions are made as the owner. Which maintainer runs is the database's: pg_partman on a
 * PostgreSQL that has it (CI installs it), the built-in one on the embedded engine and elsewhere —
 * each has its own run test below, for the engine this database has.
 */

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
const EMBEDDED = process.env.PROMPTCRAFT_TEST_DB_KIND === "embedded";
let knex: Knex;

/** The maintainer of this database, and whether the server offers pg_partman at all. */
const { ENGINE, PARTMAN_AVAILABLE } = await (async () => {
  const k = openTestKnex("analytics-store-partitions-engine");
  try {
    const { rows } = await k.raw<{ rows: { engine: string; available: boolean }[] }>(
      "select partition_engine('usage_event') as engine, exists (select 1 from pg_available_extensions where name = 'pg_partman') as available",
    );
    return { ENGINE: rows[0]!.engine, PARTMAN_AVAILABLE: rows[0]!.available };
  } finally {
    await k.destroy();
  }
})();

beforeAll(() => {
  knex = openTestKnex("analytics-store-partitions");
});
afterAll(async () => {
  await knex.destroy();
});

/** The name of the usage_event partition of `d`'s day, as this database's maintainer names it. */
async function dayName(d: Date): Promise<string> {
  const { rows } = await knex.raw<{ rows: { name: string }[] }>("select partition_child_name('usage_event', ?) as name", [d]);
  return rows[0]!.name;
}

/** A `now` whose maintenance creates at least the day after the newest usage_event partition. */
async function futureNow(): Promise<{ now: Date; nextDay: Date }> {
  const status = await partitions.partitionStatus(knex, new Date(), HOUR_MS);
  const usage = status.find((t) => t.table === "usage_event")!;
  const newestEnd = usage.partitions.filter((p) => p.attached).at(-1)!.end;
  // Maintenance makes `premake + 1` days after now's day: this now reaches one day past the newest.
  return { now: new Date(newestEnd.getTime() - (usage.premake - 1) * DAY_MS + HOUR_MS), nextDay: newestEnd };
}

/** A usage_rollup row (hourly and daily) of `tenantId` at `at`, as the owner; `rollupRows` counts them. */
async function plantRollup(tenantId: string, at: Date): Promise<void> {
  const columns = "tenant_id, kind, model, entity_id, entity_version, user_id, label, event_count, tokens_in, tokens_out, cost_usd, latency_count, latency_sum_ms, first_at, last_at";
  const nil = "00000000-0000-0000-0000-000000000000";
  const values = `?, 'view', '', '${nil}', 0, '${nil}', '', 1, 0, 0, 0, 0, 0, ?, ?`;
  await knex.raw(`insert into usage_rollup (hour, ${columns}) values (?, ${values})`, [at, tenantId, at, at]);
  await knex.raw(`insert into usage_rollup_daily (day, ${columns}) values (?, ${values})`, [new Date(Math.floor(at.getTime() / DAY_MS) * DAY_MS), tenantId, at, at]);
}
async function rollupRows(tenantId: string): Promise<number> {
  const { rows } = await knex.raw<{ rows: { n: number }[] }>(
    "select ((select count(*) from usage_rollup where tenant_id = ?) + (select count(*) from usage_rollup_daily where tenant_id = ?))::int as n",
    [tenantId, tenantId],
  );
  return rows[0]!.n;
}

describe("partition store", () => {
  test("dropping an event partition records its last position: a cursor or a start time before it is OUT_OF_RANGE CURSOR_EXPIRED, one at or after it is not", async () => {
    // One transaction, rolled back: the event log's retention changes for this test alone. The
    // planted events carry transaction ids below any real one, so no real cursor is behind them.
    const [from, to] = [new Date(Date.UTC(1993, 0, 1)), new Date(Date.UTC(1993, 1, 1))];
    const trx = await knex.transaction();
    try {
      await trx.raw("select create_time_partitions('event', ?, ?)", [from, to]);
      const { rows } = await trx.raw<{ rows: { id: string }[] }>(
        `insert into event (tenant_id, occurred_at, transaction_id, aggregate_type, event_type, actor_type)
         select ?, ?, x::text::xid8, 'entity', 'content.entity.created', 'system' from unnest(array[2, 1]) x returning id::text as id`,
        [randomUUID(), new Date(Date.UTC(1993, 0, 15))],
      );
      const [last, first] = rows.map((r) => BigInt(r.id));
      await trx.raw("update partition_policy set retention = interval '9000 days', retention_action = 'drop' where parent_table = 'event'");
      const { rows: named } = await trx.raw<{ rows: { name: string }[] }>("select partition_child_name('event', ?) as name", [from]);
      await trx.raw("select set_config('role', 'promptcraft_analytics', true)");

      const { actions } = await partitions.maintainLocked(trx, new Date());
      assert.ok(actions.some((a) => a.action === "dropped" && a.partitionName === named[0]!.name), `dropped ${named[0]!.name}`);
      const expiry = await eventLogExpiry(trx);
      assert.deepEqual(expiry, { through: { transactionId: 2n, id: last }, occurredBefore: to });

      const expired = (err: unknown) =>
        err instanceof OutOfRangeError && err.reason === ErrorReason.CURSOR_EXPIRED && err.message.includes(`restart from a time at or after ${to.toISOString()}`) && err.metadata.restart_time === to.toISOString();
      assert.throws(() => checkNotExpired(expiry, { position: { transactionId: 1n, id: first! } }), expired);
      assert.throws(() => checkNotExpired(expiry, { position: { transactionId: 2n, id: last! - 1n } }), expired);
      checkNotExpired(expiry, { position: { transactionId: 2n, id: last! } });
      checkNotExpired(expiry, { position: { transactionId: 3n, id: 0n } });
      // From a time: only a time before the end of what was dropped — at the start (no position yet)
      // and while replaying from a position below the dropped ones.
      const during = new Date(Date.UTC(1993, 0, 20));
      assert.throws(() => checkNotExpired(expiry, { startTime: during }), expired);
      assert.throws(() => checkNotExpired(expiry, { position: { transactionId: 1n, id: 0n }, startTime: during }), expired);
      checkNotExpired(expiry, { startTime: to });
      checkNotExpired(expiry, { position: { transactionId: 1n, id: 0n }, startTime: to });
      checkNotExpired(expiry, { position: { transactionId: 3n, id: 0n }, startTime: during });
      checkNotExpired(null, { position: { transactionId: 0n, id: 0n } });
    } finally {
      await trx.rollback();
    }
  });

  test("policies: event by month kept forever, usage_event by day dropped after 400 days", async () => {
    const rows = await withServiceRole(knex, "analytics", (trx) => store.policies(trx));
    const byTable = Object.fromEntries(rows.map((r) => [r.parentTable, r]));
    assert.deepEqual(
      { granularity: byTable.event!.granularity, retentionDays: byTable.event!.retentionDays },
      { granularity: "month", retentionDays: null },
    );
    assert.deepEqual(
      { granularity: byTable.usage_event!.granularity, retentionDays: byTable.usage_event!.retentionDays, action: byTable.usage_event!.retentionAction },
      { granularity: "day", retentionDays: 400, action: "drop" },
    );
  });

  test("the maintainer is pg_partman exactly when the server offers it (never on the embedded engine), for both tables", async () => {
    const rows = await withServiceRole(knex, "analytics", (trx) => store.policies(trx));
    const expected = PARTMAN_AVAILABLE && !EMBEDDED ? "pg_partman" : "built_in";
    assert.deepEqual(
      rows.map((r) => [r.parentTable, r.engine]),
      [
        ["event", expected],
        ["usage_event", expected],
      ],
    );
    assert.equal(ENGINE, expected);
    for (const r of rows) assert.equal(r.engineVersion === "", expected === "built_in");
  });

  test("partitions: attached ones with names and sizes; status reads the range from the name", async () => {
    const rows = await withServiceRole(knex, "analytics", (trx) => store.partitions(trx));
    const today = new Date(Math.floor(Date.now() / DAY_MS) * DAY_MS);
    const todayName = await dayName(today);
    const current = rows.find((r) => r.name === todayName);
    assert.ok(current?.attached, "today's usage_event partition exists");
    assert.ok(current.sizeBytes > 0);
    assert.deepEqual(partitions.partitionRange("usage_event_2026_02_28", "usage_event", "day"), {
      start: new Date("2026-02-28T00:00:00Z"),
      end: new Date("2026-03-01T00:00:00Z"),
    });
    assert.deepEqual(partitions.partitionRange("event_2026_12", "event", "month"), {
      start: new Date("2026-12-01T00:00:00Z"),
      end: new Date("2027-01-01T00:00:00Z"),
    });
    // pg_partman's names: 4.x and 5.x.
    for (const name of ["usage_event_p2026_02_28", "usage_event_p20260228"]) {
      assert.deepEqual(partitions.partitionRange(name, "usage_event", "day"), { start: new Date("2026-02-28T00:00:00Z"), end: new Date("2026-03-01T00:00:00Z") });
    }
    for (const name of ["event_p2026_12", "event_p20261201"]) {
      assert.deepEqual(partitions.partitionRange(name, "event", "month"), { start: new Date("2026-12-01T00:00:00Z"), end: new Date("2027-01-01T00:00:00Z") });
    }
  });

  test.skipIf(ENGINE !== "built_in")("built-in maintainer (the embedded engine; PostgreSQL without pg_partman): a dry run reports what a run does and changes nothing; the run creates ahead, drops past retention (with the day's event-id keys and rollups) and records it", async () => {
    const { now, nextDay } = await futureNow();
    // Past the retention as of `now`, within it as of the real time (so only this test's run drops it).
    const old = new Date(Math.floor((now.getTime() - 402 * DAY_MS) / DAY_MS) * DAY_MS);
    await knex.raw("select create_time_partitions('usage_event', ?, ?)", [old, new Date(old.getTime() + DAY_MS)]);
    const names = async () => new Set((await withServiceRole(knex, "analytics", (trx) => store.partitions(trx))).map((r) => r.name));
    // An idempotency key in the old day and one of today (as the owner: analytics cannot write them directly).
    const tenantId = randomUUID();
    const [oldId, newId] = [randomUUID(), randomUUID()];
    await knex.raw("insert into usage_event_id (tenant_id, id, occurred_at) values (?, ?, ?), (?, ?, now())", [tenantId, oldId, new Date(old.getTime() + HOUR_MS), tenantId, newId]);
    await plantRollup(tenantId, new Date(old.getTime() + HOUR_MS));
    const ids = async () => (await knex.raw<{ rows: { id: string }[] }>("select id from usage_event_id where tenant_id = ? order by id", [tenantId])).rows.map((r) => r.id);

    const dry = await partitions.runPartitionMaintenance(knex, { dryRun: true, now, intervalMs: HOUR_MS });
    const [nextName, oldName] = [await dayName(nextDay), await dayName(old)];
    assert.ok(dry.created.includes(nextName), `dry run would create ${nextName}: ${dry.created.join(", ")}`);
    assert.ok(dry.dropped.includes(oldName), `dry run would drop ${oldName}: ${dry.dropped.join(", ")}`);
    const afterDry = await names();
    assert.ok(afterDry.has(oldName) && !afterDry.has(nextName), "the dry run changed nothing");
    assert.ok(dry.prunedEventIds >= 1);
    assert.deepEqual(await ids(), [oldId, newId].sort(), "the dry run kept the keys");
    assert.ok(dry.prunedRollupRows >= 2);
    assert.equal(await rollupRows(tenantId), 2, "the dry run kept the rollups");

    const run = await partitions.runPartitionMaintenance(knex, { dryRun: false, now, intervalMs: HOUR_MS });
    assert.deepEqual([...run.created].sort(), [...dry.created].sort());
    assert.deepEqual([...run.dropped].sort(), [...dry.dropped].sort());
    const afterRun = await names();
    assert.ok(!afterRun.has(oldName) && afterRun.has(nextName));
    assert.deepEqual(await ids(), [newId], "the old day's key went with its partition");
    assert.equal(await rollupRows(tenantId), 0, "the old day's rollups went with its partition");
    const usage = run.tables.find((t) => t.table === "usage_event")!;
    assert.equal(usage.lastMaintenanceAt?.getTime(), now.getTime());
    assert.equal(usage.nextMaintenanceAt?.getTime(), now.getTime() + HOUR_MS);
    assert.equal(usage.lastError, "");
    assert.ok(usage.futureCount >= usage.premake);
  });

  test.skipIf(ENGINE !== "pg_partman")("pg_partman (PostgreSQL with the extension): a dry run reports what pg_partman would do and changes nothing; the run creates ahead, drops past retention (with the day's event-id keys and rollups) and records it", async () => {
    const before = (await partitions.partitionStatus(knex, new Date(), HOUR_MS)).find((t) => t.table === "usage_event")!;
    assert.equal(before.engine, "pg_partman");
    const newestEnd = before.partitions.filter((p) => p.attached).at(-1)!.end;
    // pg_partman creates ahead as of the real time: a premake reaching one day past the newest partition.
    const premake = Math.ceil((newestEnd.getTime() - Date.now()) / DAY_MS) + 1;
    // Retention as of a later `now` (pg_partman's drop_partition_time with that reference time).
    const now = new Date(Date.now() + 5 * DAY_MS);
    const old = new Date(Math.floor((now.getTime() - 402 * DAY_MS) / DAY_MS) * DAY_MS);
    await knex.raw("select create_time_partitions('usage_event', ?, ?)", [old, new Date(old.getTime() + DAY_MS)]);
    const [nextName, oldName] = [await dayName(newestEnd), await dayName(old)];
    assert.match(oldName, /^usage_event_p\d{4}_?\d{2}_?\d{2}$/, "create_time_partitions names partitions as pg_partman does");
    const names = async () => new Set((await withServiceRole(knex, "analytics", (trx) => store.partitions(trx))).filter((r) => r.attached).map((r) => r.name));
    const tenantId = randomUUID();
    const oldId = randomUUID();
    await knex.raw("insert into usage_event_id (tenant_id, id, occurred_at) values (?, ?, ?)", [tenantId, oldId, new Date(old.getTime() + HOUR_MS)]);
    await plantRollup(tenantId, new Date(old.getTime() + HOUR_MS));
    const ids = async () => (await knex.raw<{ rows: { id: string }[] }>("select id from usage_event_id where tenant_id = ?", [tenantId])).rows.map((r) => r.id);

    await knex.raw("update partition_policy set premake = ? where parent_table = 'usage_event'", [premake]);
    try {
      const dry = await partitions.runPartitionMaintenance(knex, { dryRun: true, now, intervalMs: HOUR_MS });
      assert.ok(dry.created.includes(nextName), `dry run would create ${nextName}: ${dry.created.join(", ")}`);
      assert.ok(dry.dropped.includes(oldName), `dry run would drop ${oldName}: ${dry.dropped.join(", ")}`);
      const afterDry = await names();
      assert.ok(afterDry.has(oldName) && !afterDry.has(nextName), "the dry run changed nothing");
      assert.deepEqual(await ids(), [oldId], "the dry run kept the key");
      assert.equal(await rollupRows(tenantId), 2, "the dry run kept the rollups");

      const run = await partitions.runPartitionMaintenance(knex, { dryRun: false, now, intervalMs: HOUR_MS });
      assert.ok(run.created.includes(nextName) && run.dropped.includes(oldName));
      const afterRun = await names();
      assert.ok(!afterRun.has(oldName) && afterRun.has(nextName));
      assert.deepEqual(await ids(), [], "the old day's key went with its partition");
      assert.equal(await rollupRows(tenantId), 0, "the old day's rollups went with its partition");
      // What pg_partman made is under row-level security like the built-in partitions.
      const { rows } = await knex.raw<{ rows: { forced: boolean }[] }>("select relforcerowsecurity as forced from pg_class where relname = ?", [nextName]);
      assert.equal(rows[0]?.forced, true);
      const usage = run.tables.find((t) => t.table === "usage_event")!;
      assert.equal(usage.engine, "pg_partman");
      assert.equal(usage.lastMaintenanceAt?.getTime(), now.getTime());
      assert.equal(usage.lastError, "");
      const next = usage.partitions.find((p) => p.name === nextName)!;
      assert.deepEqual([next.start.getTime(), next.end.getTime()], [newestEnd.getTime(), newestEnd.getTime() + DAY_MS]);
      // pg_partman's configuration follows partition_policy.
      const { rows: config } = await knex.raw<{ rows: { premake: number; retention: string }[] }>(
        "select c.premake, c.retention from partman.part_config c where c.parent_table = 'public.usage_event'",
      );
      assert.deepEqual(config[0], { premake, retention: "400 days" });
    } finally {
      await knex.raw("update partition_policy set premake = 14 where parent_table = 'usage_event'");
    }
  });

  test("a run while another holds the maintenance lock is ABORTED REFRESH_IN_PROGRESS and does nothing", { skip: EMBEDDED }, async () => {
    const holder = await knex.transaction();
    try {
      await holder.raw("select pg_advisory_xact_lock(?)", [store.PARTITION_MAINTENANCE_LOCK_KEY]);
      await assert.rejects(
        partitions.runPartitionMaintenance(knex, { dryRun: false, now: new Date(), intervalMs: HOUR_MS }),
        (err: unknown) => err instanceof AbortedError && err.reason === ErrorReason.REFRESH_IN_PROGRESS,
      );
    } finally {
      await holder.rollback();
    }
  });
});
