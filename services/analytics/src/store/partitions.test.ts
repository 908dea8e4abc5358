import { afterAll, beforeAll, describe, test } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { withServiceRole, type Knex } from "@promptcraft/db";
import { AbortedError } from "@promptcraft/platform";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import { openTestKnex } from "@promptcraft/testing";
import * as partitions from "../domain/partitions.js";
import * as store from "./partitions.js";

/*
 * Store tier: the SQL of store/partitions.ts and the maintenance run of domain/partitions.ts on the
 * test runner's database. Other test files' analytics services run maintenance as of the real time
 * at the same moment, so these runs are as of a later `now` (past the newest partition): what they
 * create and drop, no real-time run would. Planted partitions are made as the owner.
 */

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
const EMBEDDED = process.env.PROMPTCRAFT_TEST_DB_KIND === "embedded";
let knex: Knex;

beforeAll(() => {
  knex = openTestKnex("analytics-store-partitions");
});
afterAll(async () => {
  await knex.destroy();
});

const dayName = (d: Date) => `usage_event_${d.toISOString().slice(0, 10).replaceAll("-", "_")}`;

/** A `now` whose maintenance creates at least the day after the newest usage_event partition. */
async function futureNow(): Promise<{ now: Date; nextDay: Date }> {
  const status = await partitions.partitionStatus(knex, new Date(), HOUR_MS);
  const usage = status.find((t) => t.table === "usage_event")!;
  const newestEnd = usage.partitions.filter((p) => p.attached).at(-1)!.end;
  // Maintenance makes `premake + 1` days after now's day: this now reaches one day past the newest.
  return { now: new Date(newestEnd.getTime() - (usage.premake - 1) * DAY_MS + HOUR_MS), nextDay: newestEnd };
}

describe("partition store", () => {
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

  test("partitions: attached ones with names and sizes; status reads the range from the name", async () => {
    const rows = await withServiceRole(knex, "analytics", (trx) => store.partitions(trx));
    const today = new Date(Math.floor(Date.now() / DAY_MS) * DAY_MS);
    const current = rows.find((r) => r.name === dayName(today));
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
  });

  test("a dry run reports what a run does and changes nothing; the run creates ahead, drops past retention (with the day's event-id keys) and records it", async () => {
    const { now, nextDay } = await futureNow();
    // Past the retention as of `now`, within it as of the real time (so only this test's run drops it).
    const old = new Date(Math.floor((now.getTime() - 402 * DAY_MS) / DAY_MS) * DAY_MS);
    await knex.raw("select create_time_partitions('usage_event', ?, ?)", [old, new Date(old.getTime() + DAY_MS)]);
    const names = async () => new Set((await withServiceRole(knex, "analytics", (trx) => store.partitions(trx))).map((r) => r.name));
    // An idempotency key in the old day and one of today (as the owner: analytics cannot write them directly).
    const tenantId = randomUUID();
    const [oldId, newId] = [randomUUID(), randomUUID()];
    await knex.raw("insert into usage_event_id (tenant_id, id, occurred_at) values (?, ?, ?), (?, ?, now())", [tenantId, oldId, new Date(old.getTime() + HOUR_MS), tenantId, newId]);
    const ids = async () => (await knex.raw<{ rows: { id: string }[] }>("select id from usage_event_id where tenant_id = ? order by id", [tenantId])).rows.map((r) => r.id);

    const dry = await partitions.runPartitionMaintenance(knex, { dryRun: true, now, intervalMs: HOUR_MS });
    assert.ok(dry.created.includes(dayName(nextDay)), `dry run would create ${dayName(nextDay)}: ${dry.created.join(", ")}`);
    assert.ok(dry.dropped.includes(dayName(old)), `dry run would drop ${dayName(old)}: ${dry.dropped.join(", ")}`);
    const afterDry = await names();
    assert.ok(afterDry.has(dayName(old)) && !afterDry.has(dayName(nextDay)), "the dry run changed nothing");
    assert.ok(dry.prunedEventIds >= 1);
    assert.deepEqual(await ids(), [oldId, newId].sort(), "the dry run kept the keys");

    const run = await partitions.runPartitionMaintenance(knex, { dryRun: false, now, intervalMs: HOUR_MS });
    assert.deepEqual([...run.created].sort(), [...dry.created].sort());
    assert.deepEqual([...run.dropped].sort(), [...dry.dropped].sort());
    const afterRun = await names();
    assert.ok(!afterRun.has(dayName(old)) && afterRun.has(dayName(nextDay)));
    assert.deepEqual(await ids(), [newId], "the old day's key went with its partition");
    const usage = run.tables.find((t) => t.table === "usage_event")!;
    assert.equal(usage.lastMaintenanceAt?.getTime(), now.getTime());
    assert.equal(usage.nextMaintenanceAt?.getTime(), now.getTime() + HOUR_MS);
    assert.equal(usage.lastError, "");
    assert.ok(usage.futureCount >= usage.premake);
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
