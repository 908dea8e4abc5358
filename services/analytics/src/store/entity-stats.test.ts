import { afterAll, beforeAll, describe, test } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { withTenant, type Knex } from "@promptcraft/db";
import { createTenant, openTestKnex } from "@promptcraft/testing";
import * as stats from "./entity-stats.js";
import { refreshUsageRollup } from "./rollups.js";
import { insertUsageEvents, type NewUsageEvent } from "./usage.js";
import { usageEvent } from "./usage-event-fixture.js";

/*
 * Store tier: entity usage over rollups + tail, the entity listing's order and keyset, and the
 * exact figures of label-move windows, on the test runner's database as promptcraft_analytics under
 * row-level security, with tenants of their own.
 */

let knex: Knex;

beforeAll(() => {
  knex = openTestKnex("analytics-store-entity-stats");
});
afterAll(async () => {
  await knex.destroy();
});

const HOUR = 3_600_000;
const base = new Date(Math.floor(Date.now() / HOUR) * HOUR - 5 * HOUR);

function event(overrides: Partial<NewUsageEvent> = {}): NewUsageEvent {
  return usageEvent({ occurredAt: new Date(base.getTime() + 60_000), ...overrides });
}

const insert = (tenantId: string, events: NewUsageEvent[]) => withTenant(knex, { service: "analytics", tenantId }, (trx) => insertUsageEvents(trx, tenantId, events));
const asTenant = <T>(tenantId: string, work: (trx: Knex.Transaction) => Promise<T>) => withTenant(knex, { service: "analytics", tenantId }, work);

async function rolledCount(tenantId: string): Promise<number> {
  const { rows } = await knex.raw<{ rows: { n: number }[] }>("select coalesce(sum(event_count), 0)::int as n from usage_rollup where tenant_id = ?", [tenantId]);
  return rows[0]!.n;
}

/** Runs the refresher until the tenant's rollups hold `n` events (another file's open transaction may hold the horizon back). */
async function rollUntil(tenantId: string, n: number): Promise<void> {
  for (let i = 0; i < 200 && (await rolledCount(tenantId)) < n; i++) {
    await refreshUsageRollup(knex);
    if ((await rolledCount(tenantId)) < n) await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(await rolledCount(tenantId), n);
}

const view = (r: stats.EntityUsageRow) => [r.entityVersion, r.viewCount, r.renderCount, r.llmCallCount, r.eventCount, r.costMicros, r.firstAt?.getTime(), r.lastAt?.getTime()];

describe("store/entity-stats", () => {
  test("entity usage per entity and per version counts the tail at once, and the same once rolled up", async () => {
    const tenantId = await createTenant(knex);
    const entity = randomUUID();
    const t0 = base.getTime() + 60_000;
    await insert(tenantId, [
      event({ entityId: entity, entityVersion: 1, occurredAt: new Date(t0) }),
      event({ entityId: entity, entityVersion: 1, kind: "view", occurredAt: new Date(t0 + HOUR) }),
      event({ entityId: entity, entityVersion: 2, kind: "llm_call", costMicros: 1500n, latencyMs: 200, occurredAt: new Date(t0 + 2 * HOUR) }),
      event({ entityId: entity, kind: "render", occurredAt: new Date(t0 + 3 * HOUR) }),
      event({ entityId: randomUUID(), entityVersion: 1 }),
    ]);
    const now = new Date();
    const fresh = await asTenant(tenantId, (trx) => stats.entityUsage(trx, tenantId, [entity], now));
    const expected = [
      [null, 1n, 2n, 1n, 4n, 1500n, t0, t0 + 3 * HOUR],
      [0, 0n, 1n, 0n, 1n, 0n, t0 + 3 * HOUR, t0 + 3 * HOUR],
      [1, 1n, 1n, 0n, 2n, 0n, t0, t0 + HOUR],
      [2, 0n, 0n, 1n, 1n, 1500n, t0 + 2 * HOUR, t0 + 2 * HOUR],
    ];
    const sorted = (rows: stats.EntityUsageRow[]) => rows.map(view).sort((a, b) => (a[0] === null ? -1 : b[0] === null ? 1 : (a[0] as number) - (b[0] as number)));
    assert.deepEqual(sorted(fresh), expected);
    assert.equal(fresh.find((r) => r.entityVersion === 2)!.latencyCount, 1n);

    await rollUntil(tenantId, 5);
    assert.deepEqual(sorted(await asTenant(tenantId, (trx) => stats.entityUsage(trx, tenantId, [entity], new Date()))), expected);
  });

  test("the listing orders by the chosen count, pages by keyset, and shows one tenant only", async () => {
    const tenantId = await createTenant(knex);
    const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()];
    await insert(tenantId, [
      ...Array.from({ length: 3 }, () => event({ entityId: a })),
      ...Array.from({ length: 1 }, () => event({ entityId: b })),
      ...Array.from({ length: 2 }, () => event({ entityId: c, kind: "view" })),
      event({ entityId: c }),
      event({ kind: "search" }),
    ]);
    // Some rolled up, some in the tail.
    await rollUntil(tenantId, 8);
    await insert(tenantId, [event({ entityId: a })]);
    const list = (q: Partial<stats.ListEntitiesQuery>) =>
      asTenant(tenantId, (trx) => stats.listEntities(trx, tenantId, { order: "render_count", types: [], end: new Date(), after: null, limit: 10, ...q }));
    const byRenders = await list({});
    // b and c tie on one render: by entity id.
    const tie = [b, c].sort();
    assert.deepEqual(
      byRenders.map((l) => [l.entityId, l.key]),
      [
        [a, "4"],
        [tie[0], "1"],
        [tie[1], "1"],
      ],
    );
    const first = await list({ limit: 2 });
    const rest = await list({ after: { key: first[1]!.key, entityId: first[1]!.entityId } });
    assert.deepEqual(
      rest.map((l) => l.entityId),
      [tie[1]],
    );
    assert.deepEqual(
      (await list({ order: "view_count" })).map((l) => l.entityId)[0],
      c,
    );
    const lastUse = await list({ order: "last_use_time" });
    assert.ok(lastUse.every((l) => /^\d+$/.test(l.key)));

    const other = await createTenant(knex);
    assert.deepEqual(await asTenant(other, (trx) => stats.listEntities(trx, other, { order: "render_count", types: [], end: new Date(), after: null, limit: 10 })), []);
    assert.deepEqual(await asTenant(other, (trx) => stats.entityUsage(trx, other, [a], new Date())), []);
  });

  test("label windows: exact medians of latency and cost, per version and label", async () => {
    const tenantId = await createTenant(knex);
    const entity = randomUUID();
    const move = new Date(base.getTime() + 2 * HOUR);
    const at = (offsetMs: number) => new Date(move.getTime() + offsetMs);
    const llm = (version: number, offsetMs: number, costMicros: bigint, latencyMs: number, label = "production") =>
      event({ entityId: entity, entityVersion: version, label, kind: "llm_call", costMicros, latencyMs, tokensIn: 100, tokensOut: version * 10, occurredAt: at(offsetMs) });
    await insert(tenantId, [
      llm(7, -30 * 60_000, 1000n, 100),
      llm(7, -20 * 60_000, 2000n, 200),
      llm(7, -10 * 60_000, 9000n, 300),
      // Not production, or another version: not counted.
      llm(7, -5 * 60_000, 50_000n, 900, "staging"),
      llm(8, -5 * 60_000, 50_000n, 900),
      llm(8, 10 * 60_000, 2000n, 150),
      llm(8, 20 * 60_000, 2360n, 250),
      // Outside the after window.
      llm(8, 2 * HOUR, 90_000n, 900),
    ]);
    const [before, after] = await asTenant(tenantId, (trx) =>
      stats.labelWindowFigures(trx, tenantId, {
        entityId: entity,
        label: "production",
        kinds: [],
        windows: [
          { start: at(-HOUR), end: move, version: 7 },
          { start: move, end: at(HOUR), version: 8 },
        ],
      }),
    );
    assert.deepEqual([before!.eventCount, before!.costMicros, before!.medianCostMicros, before!.meanCostMicros, before!.p50LatencyMs, before!.meanTokensOut], [3n, 12000n, 2000, 4000, 200, 70]);
    assert.deepEqual([after!.eventCount, after!.costMicros, after!.medianCostMicros, after!.p50LatencyMs, after!.meanTokensOut], [2n, 4360n, 2180, 200, 80]);
    const none = await asTenant(tenantId, (trx) =>
      stats.labelWindowFigures(trx, tenantId, { entityId: entity, label: "production", kinds: ["render"], windows: [{ start: at(-HOUR), end: move, version: 7 }] }),
    );
    assert.deepEqual([none[0]!.eventCount, none[0]!.medianCostMicros, none[0]!.p50LatencyMs], [0n, null, null]);
  });
});
