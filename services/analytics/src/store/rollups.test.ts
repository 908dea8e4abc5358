import { afterAll, beforeAll, describe, test } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { withServiceRole, withTenant, type Knex } from "@promptcraft/db";
import { createTenant, openTestKnex, whileOtherDatabaseWrites } from "@promptcraft/testing";
import { LATENCY_BOUNDS_MS, histogramQuantile } from "../domain/summaries.js";
import * as rollups from "./rollups.js";
import { insertUsageEvents, type NewUsageEvent } from "./usage.js";
import { usageEvent } from "./usage-event-fixture.js";

/*
 * Store tier: usage_rollup, its refresher and the summary query (rollups + tail) on the test
 * runner's database, as promptcraft_analytics under row-level security, with tenants of its own.
 */

let knex: Knex;
const embedded = process.env.PROMPTCRAFT_TEST_DB_KIND === "embedded";

beforeAll(() => {
  knex = openTestKnex("analytics-store-rollups");
});
afterAll(async () => {
  await knex.destroy();
});

const HOUR = 3_600_000;
const base = new Date(Math.floor(Date.now() / HOUR) * HOUR - 5 * HOUR);

function event(overrides: Partial<NewUsageEvent> = {}): NewUsageEvent {
  return usageEvent({
    occurredAt: new Date(base.getTime() + 60_000),
    kind: "llm_call",
    model: "gpt-4o-mini",
    tokensIn: 10,
    tokensOut: 20,
    costMicros: 1_500_000n,
    latencyMs: 100,
    ...overrides,
  });
}

const insert = (tenantId: string, events: NewUsageEvent[]) =>
  withTenant(knex, { service: "analytics", tenantId }, (trx) => insertUsageEvents(trx, tenantId, events));

const summary = (tenantId: string, q: Partial<rollups.SummaryQuery> = {}) =>
  withTenant(knex, { service: "analytics", tenantId }, (trx) =>
    rollups.usageSummary(trx, tenantId, {
      start: base,
      end: new Date(base.getTime() + 24 * HOUR),
      granularity: "hour",
      groupBy: [],
      kinds: [],
      entityId: null,
      userId: null,
      ...q,
    }),
  );

const totalsOf = (rows: rollups.SummaryRow[]) => rows.find((r) => r.slot === null)!;

async function rolledCount(tenantId: string): Promise<number> {
  const { rows } = await knex.raw<{ rows: { n: number }[] }>("select coalesce(sum(event_count), 0)::int as n from usage_rollup where tenant_id = ?", [tenantId]);
  return rows[0]!.n;
}

/**
 * Runs the refresher until the tenant's rollups hold `n` events: a transaction of another test file
 * still open holds the horizon back, and a later run catches up.
 */
async function rollUntil(tenantId: string, n: number): Promise<void> {
  for (let i = 0; i < 200 && (await rolledCount(tenantId)) < n; i++) {
    await rollups.refreshUsageRollup(knex);
    if ((await rolledCount(tenantId)) < n) await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(await rolledCount(tenantId), n);
}

describe("store/rollups", () => {
  test("the database's histogram bounds are the domain's", async () => {
    const bounds = await withServiceRole(knex, "analytics", (trx) => rollups.latencyBounds(trx));
    assert.deepEqual(bounds, LATENCY_BOUNDS_MS);
    assert.equal(rollups.LATENCY_BUCKETS, bounds.length + 1);
  });

  test("an event counts at once (tail), and the same after the refresher rolled it up", async () => {
    const tenantId = await createTenant(knex);
    const user = randomUUID();
    await insert(tenantId, [
      event({ latencyMs: 100, userId: user }),
      event({ latencyMs: 300, model: "gpt-4o", costMicros: 2n }),
      event({ latencyMs: null, kind: "view", model: null, occurredAt: new Date(base.getTime() + HOUR + 5), entityId: randomUUID(), entityVersion: 2, label: "production" }),
    ]);
    const before = await summary(tenantId, { groupBy: ["model"] });
    const t = totalsOf(before);
    assert.equal(t.eventCount, 3n);
    assert.equal(t.tokensIn, 30n);
    assert.equal(t.costMicros, 3_000_002n);
    assert.equal(t.latencyCount, 2n);
    assert.equal(t.latencySumMs, 400n);
    assert.equal(t.uniqueUsers, 1n);
    assert.equal(histogramQuantile(t.latencyHist, 1)! <= 500, true);

    await rollUntil(tenantId, 3);
    const after = await summary(tenantId, { groupBy: ["model"] });
    const key = (r: rollups.SummaryRow) => `${r.slot?.toISOString()}|${r.model}|${r.eventCount}|${r.costMicros}|${r.latencyHist?.join(",")}`;
    assert.deepEqual(after.map(key).sort(), before.map(key).sort());
    assert.deepEqual(
      after.filter((r) => r.slot !== null).map((r) => [r.slot!.getTime() - base.getTime(), r.model, r.eventCount]).sort(),
      [
        [0, "gpt-4o", 1n],
        [0, "gpt-4o-mini", 1n],
        [HOUR, "", 1n],
      ].sort(),
    );

    // More events after the run: rollups + tail, nothing counted twice.
    await insert(tenantId, [event()]);
    assert.equal(totalsOf(await summary(tenantId)).eventCount, 4n);
    await rollUntil(tenantId, 4);
    assert.equal(totalsOf(await summary(tenantId)).eventCount, 4n);
  });

  test("groups by version (with its entity), filters by kind, and days hold their hours", async () => {
    const tenantId = await createTenant(knex);
    const entity = randomUUID();
    await insert(tenantId, [
      event({ kind: "render", entityId: entity, entityVersion: 1 }),
      event({ kind: "render", entityId: entity, entityVersion: 2 }),
      event({ kind: "render", entityId: entity, entityVersion: 2 }),
      event({ kind: "view", entityId: entity, entityVersion: 2 }),
    ]);
    await rollUntil(tenantId, 4);
    await insert(tenantId, [event({ kind: "render", entityId: entity, entityVersion: 2, occurredAt: new Date(base.getTime() + 2 * HOUR) })]);
    const rows = await summary(tenantId, { granularity: "day", start: new Date(Date.UTC(base.getUTCFullYear(), base.getUTCMonth(), base.getUTCDate())), groupBy: ["version"], kinds: ["render"] });
    const groups = rows.filter((r) => r.slot !== null).map((r) => [r.entityId, r.entityVersion, r.eventCount]);
    // The events may straddle midnight UTC: sum per version.
    const per = new Map<number, bigint>();
    for (const [, v, n] of groups) per.set(v as number, (per.get(v as number) ?? 0n) + (n as bigint));
    assert.deepEqual([...per.entries()].sort(), [
      [1, 1n],
      [2, 3n],
    ]);
    assert.ok(groups.every(([e]) => e === entity));
  });

  test("day and month slots read whole days from the daily rollup, kept in step with the hourly one", async () => {
    const tenantId = await createTenant(knex);
    const DAY = 24 * HOUR;
    const today = Math.floor(Date.now() / DAY) * DAY;
    const at = (days: number, hours: number) => new Date(today - days * DAY + hours * HOUR + 60_000);
    await insert(tenantId, [
      event({ occurredAt: at(3, 1), latencyMs: 20, userId: randomUUID() }),
      event({ occurredAt: at(3, 23), latencyMs: 2000 }),
      event({ occurredAt: at(2, 5), model: "gpt-4o", latencyMs: null }),
      event({ occurredAt: at(1, 0), kind: "render", latencyMs: 7 }),
    ]);
    await rollUntil(tenantId, 4);
    // The tail of rolled days and the events of the current hour count too.
    await insert(tenantId, [event({ occurredAt: at(3, 12), latencyMs: 300 }), event({ occurredAt: new Date(Date.now() - 1000) })]);

    const { rows: daily } = await knex.raw<{ rows: { n: number; lat: number; hist: string[] }[] }>(
      "select sum(event_count)::int as n, sum(latency_count)::int as lat, array_agg(latency_hist::text) as hist from usage_rollup_daily where tenant_id = ?",
      [tenantId],
    );
    assert.equal(daily[0]!.n, 4);
    assert.equal(daily[0]!.lat, 3);

    const start = new Date(today - 3 * DAY);
    const byDay = await summary(tenantId, { granularity: "day", start, end: new Date(), groupBy: ["model"] });
    const byHour = await summary(tenantId, { granularity: "hour", start, end: new Date(), groupBy: ["model"] });
    const perDay = new Map<string, bigint>();
    for (const r of byHour.filter((r) => r.slot !== null)) {
      const k = `${Math.floor(r.slot!.getTime() / DAY) * DAY}|${r.model}`;
      perDay.set(k, (perDay.get(k) ?? 0n) + r.eventCount);
    }
    assert.deepEqual(
      byDay.filter((r) => r.slot !== null).map((r) => [`${r.slot!.getTime()}|${r.model}`, r.eventCount]).sort(),
      [...perDay.entries()].sort(),
    );
    const [d, h] = [totalsOf(byDay), totalsOf(byHour)];
    assert.equal(d.eventCount, 6n);
    assert.deepEqual([d.latencyCount, d.latencySumMs, d.latencyHist, d.uniqueUsers], [h.latencyCount, h.latencySumMs, h.latencyHist, h.uniqueUsers]);

    // A range starting inside a day (the store takes the hours before the first whole day hourly).
    const fromNoon = await summary(tenantId, { granularity: "day", start: new Date(today - 3 * DAY + 12 * HOUR), end: new Date() });
    assert.equal(totalsOf(fromNoon).eventCount, 5n);
    const month = await summary(tenantId, { granularity: "month", start: new Date(today - 3 * DAY), end: new Date(), kinds: ["render"] });
    assert.equal(totalsOf(month).eventCount, 1n);
  });

  test("rollups before the oldest usage_event partition are pruned with it", async () => {
    const tenantId = await createTenant(knex);
    const long = new Date(Date.UTC(2001, 0, 1));
    const columns = "tenant_id, kind, model, entity_id, entity_version, user_id, label, event_count, tokens_in, tokens_out, cost_usd, latency_count, latency_sum_ms, first_at, last_at";
    const values = `?, 'view', '', '${rollups.NIL_UUID}', 0, '${rollups.NIL_UUID}', '', 1, 0, 0, 0, 0, 0, ?, ?`;
    await knex.raw(`insert into usage_rollup (hour, ${columns}) values (?, ${values})`, [long, tenantId, long, long]);
    await knex.raw(`insert into usage_rollup_daily (day, ${columns}) values (?, ${values})`, [long, tenantId, long, long]);
    await insert(tenantId, [event()]);
    await rollUntil(tenantId, 2);
    const pruned = await withServiceRole(knex, "analytics", (trx) => trx.raw<{ rows: { n: string }[] }>("select prune_usage_rollups() as n"));
    assert.ok(Number(pruned.rows[0]!.n) >= 2);
    assert.equal(await rolledCount(tenantId), 1);
    const { rows } = await knex.raw<{ rows: { n: number }[] }>("select count(*)::int as n from usage_rollup_daily where tenant_id = ?", [tenantId]);
    assert.equal(rows[0]!.n, 1);
  });

  test("the end of the range cuts inside an hour: only the events before it", async () => {
    const tenantId = await createTenant(knex);
    await insert(tenantId, [event({ occurredAt: new Date(base.getTime() + 10_000) }), event({ occurredAt: new Date(base.getTime() + 50_000) })]);
    await rollUntil(tenantId, 2);
    assert.equal(totalsOf(await summary(tenantId, { end: new Date(base.getTime() + 30_000) })).eventCount, 1n);
  });

  test("usageCountsByKind (quotas) agrees with the summary per kind and in total, rolled and in the tail", async () => {
    const tenantId = await createTenant(knex);
    // Tokens past 2^31 in total.
    await insert(tenantId, [event({ tokensIn: 1_500_000_000, tokensOut: 0 }), event({ tokensIn: 0, tokensOut: 1_500_000_000 }), event({ kind: "render", tokensIn: 0, tokensOut: 0, costMicros: 1n })]);
    await rollUntil(tenantId, 3);
    await insert(tenantId, [event({ kind: "render", costMicros: 3n })]);
    const end = new Date(base.getTime() + 24 * HOUR);
    const counts = await withTenant(knex, { service: "analytics", tenantId }, (trx) => rollups.usageCountsByKind(trx, tenantId, base, end));
    const byKind = await summary(tenantId, { granularity: "month", groupBy: ["kind"], start: new Date(Date.UTC(base.getUTCFullYear(), base.getUTCMonth(), 1)) });
    const figures = (rows: { kind: string | null; eventCount: bigint; costMicros: bigint }[]) =>
      rows.map((r) => [r.kind, r.eventCount, r.costMicros]).sort((a, b) => String(a[0]).localeCompare(String(b[0])));
    assert.deepEqual(figures(counts), figures(byKind.map((r) => ({ ...r, kind: r.slot === null ? null : r.kind }))));
    assert.equal(counts.find((r) => r.kind === null)!.tokens, 3_000_000_000n + 10n + 20n, "token sums do not overflow");
  });

  test("another tenant's usage is invisible", async () => {
    const a = await createTenant(knex);
    const b = await createTenant(knex);
    await insert(a, [event()]);
    await rollUntil(a, 1);
    await insert(a, [event()]);
    assert.equal(totalsOf(await summary(b)).eventCount, 0n);
  });

  test.skipIf(embedded)("a transaction that commits after a refresher run is rolled up by a later run, once", async () => {
    const tenantId = await createTenant(knex);
    const late = event();
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let inserted!: () => void;
    const wrote = new Promise<void>((r) => (inserted = r));
    const writer = withTenant(knex, { service: "analytics", tenantId }, async (trx) => {
      await insertUsageEvents(trx, tenantId, [late]);
      inserted();
      await held;
    });
    await wrote;
    // Events committed after the late one began, before it commits.
    await insert(tenantId, [event(), event()]);
    const run = await rollups.refreshUsageRollup(knex);
    assert.notEqual(run.status, "skipped");
    assert.equal(await rolledCount(tenantId), 0, "the horizon stops below the open transaction");
    release();
    await writer;
    assert.equal(totalsOf(await summary(tenantId)).eventCount, 3n);
    await rollUntil(tenantId, 3);
    assert.equal(totalsOf(await summary(tenantId)).eventCount, 3n);
  });

  test.skipIf(embedded)(
    "a writing transaction in another database of the server does not hold the refresher back (the embedded engine has one database)",
    async () => {
      const tenantId = await createTenant(knex);
      await whileOtherDatabaseWrites(async () => {
        await insert(tenantId, [event(), event()]);
        await rollUntil(tenantId, 2);
      });
    },
  );
});
