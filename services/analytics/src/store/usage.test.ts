import { afterAll, beforeAll, describe, test } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { withServiceRole, withTenant, type Knex } from "@promptcraft/db";
import { createTenant, openTestKnex } from "@promptcraft/testing";
import * as store from "./usage.js";
import { usageEvent } from "./usage-event-fixture.js";

/*
 * Store tier: the SQL of store/usage.ts on the test runner's database, as promptcraft_analytics
 * under row-level security (withTenant), with tenants of its own.
 */

let knex: Knex;

beforeAll(() => {
  knex = openTestKnex("analytics-store-usage");
});
afterAll(async () => {
  await knex.destroy();
});

function event(overrides: Partial<store.NewUsageEvent> = {}): store.NewUsageEvent {
  return usageEvent({
    kind: "llm_call",
    entityId: randomUUID(),
    entityVersion: 3,
    label: "production",
    model: "gpt-4o-mini",
    tokensIn: 10,
    tokensOut: 20,
    costMicros: 1_234_567n,
    latencyMs: 250,
    metadata: { a: 1 },
    requestId: "req-1",
    ...overrides,
  });
}

const insert = (tenantId: string, events: store.NewUsageEvent[]) =>
  withTenant(knex, { service: "analytics", tenantId }, (trx) => store.insertUsageEvents(trx, tenantId, events));

async function countOf(tenantId: string, id: string): Promise<number> {
  const { rows } = await knex.raw<{ rows: { n: number }[] }>("select count(*)::int as n from usage_event where tenant_id = ? and id = ?", [tenantId, id]);
  return rows[0]!.n;
}

describe("store/usage", () => {
  test("insertUsageEvents stores a batch in one statement, every column as given, cost exact", async () => {
    const tenantId = await createTenant(knex);
    const e = event({ metadata: { nested: { x: [1, "two"] } } });
    const plain = event({ entityId: null, entityVersion: null, label: null, model: null, latencyMs: null, metadata: {}, requestId: null, costMicros: 0n });
    const stored = await insert(tenantId, [e, plain]);
    assert.deepEqual([...stored].sort(), [e.id, plain.id].sort());
    const { rows } = await knex.raw<{ rows: Record<string, unknown>[] }>(
      `select kind, entity_id, entity_version, label, model, tokens_in, tokens_out, cost_usd::text as cost_usd, latency_ms, metadata, request_id
       from usage_event where tenant_id = ? and id = ?`,
      [tenantId, e.id],
    );
    assert.deepEqual(rows[0], {
      kind: "llm_call",
      entity_id: e.entityId,
      entity_version: 3,
      label: "production",
      model: "gpt-4o-mini",
      tokens_in: 10,
      tokens_out: 20,
      cost_usd: "1.23456700",
      latency_ms: 250,
      metadata: { nested: { x: [1, "two"] } },
      request_id: "req-1",
    });
  });

  test("an id is stored once per tenant whatever occurred_at a retry carries; the ids stored are returned", async () => {
    const tenantId = await createTenant(knex);
    const first = event();
    assert.deepEqual([...(await insert(tenantId, [first]))], [first.id]);
    const retry = { ...first, occurredAt: new Date(Date.now() - 86_400_000) };
    const other = event();
    assert.deepEqual([...(await insert(tenantId, [retry, other]))], [other.id], "the retry with another day is a duplicate");
    assert.equal(await countOf(tenantId, first.id), 1);
    // Another tenant may use the same id: keys are per tenant.
    const tenant2 = await createTenant(knex);
    assert.deepEqual([...(await insert(tenant2, [first]))], [first.id]);
  });

  test("concurrent inserts of the same ids store each once", async () => {
    const tenantId = await createTenant(knex);
    const batch = Array.from({ length: 50 }, () => event());
    const results = await Promise.all([insert(tenantId, batch), insert(tenantId, batch.map((e) => ({ ...e, occurredAt: new Date(Date.now() - 3_600_000) })))]);
    assert.equal(results[0].size + results[1].size, 50);
    const { rows } = await knex.raw<{ rows: { n: number }[] }>("select count(*)::int as n from usage_event where tenant_id = ?", [tenantId]);
    assert.equal(rows[0]!.n, 50);
  });

  test("row-level security: a transaction of one tenant cannot write another's events; switchTenant moves it", async () => {
    const [a, b] = [await createTenant(knex), await createTenant(knex)];
    await assert.rejects(
      withTenant(knex, { service: "analytics", tenantId: a }, (trx) => store.insertUsageEvents(trx, b, [event()])),
      /row-level security/,
    );
    const e = event();
    await withTenant(knex, { service: "analytics", tenantId: a }, async (trx) => {
      await store.insertUsageEvents(trx, a, [event()]);
      await store.switchTenant(trx, b);
      await store.insertUsageEvents(trx, b, [e]);
    });
    assert.equal(await countOf(b, e.id), 1);
  });

  test("usagePartitionRanges: the daily partitions, oldest first, covering a week back to two weeks ahead", async () => {
    const ranges = await withServiceRole(knex, "analytics", store.usagePartitionRanges);
    assert.ok(ranges.length >= 22, `${ranges.length} partitions`);
    for (const r of ranges) assert.equal(r.to.getTime() - r.from.getTime(), 86_400_000);
    for (let i = 1; i < ranges.length; i++) assert.ok(ranges[i]!.from.getTime() >= ranges[i - 1]!.to.getTime());
    const now = Date.now();
    assert.ok(ranges[0]!.from.getTime() <= now - 7 * 86_400_000);
    assert.ok(ranges.at(-1)!.to.getTime() >= now + 14 * 86_400_000);
  });
});
