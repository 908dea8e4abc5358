import { afterAll, beforeAll, describe, test } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { withServiceRole, withTenant, type Knex } from "@promptcraft/db";
import { createTenant, openTestKnex } from "@promptcraft/testing";
import * as readModels from "../domain/read-models.js";
import { isInProgress } from "../domain/schedule.js";
import * as store from "./read-models.js";
import { insertUsageEvents } from "./usage.js";

/*
 * Store tier: the SQL of store/read-models.ts and the refresh of domain/read-models.ts on the test
 * runner's database. Other test files' analytics services refresh at their start: a refresh here
 * that meets one of theirs is retried.
 */

const EMBEDDED = process.env.PROMPTCRAFT_TEST_DB_KIND === "embedded";
const INTERVAL_MS = 300_000;
let knex: Knex;

beforeAll(() => {
  knex = openTestKnex("analytics-store-read-models");
});
afterAll(async () => {
  await knex.destroy();
});

async function refreshWhenFree(name: readModels.ReadModelName | null): Promise<readModels.ReadModelInfo[]> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await readModels.refreshReadModels(knex, name, INTERVAL_MS);
    } catch (err) {
      if (!isInProgress(err) || attempt === 50) throw err;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

describe("read-model store", () => {
  test("both read models are listed with their bookkeeping", async () => {
    const rows = await withServiceRole(knex, "analytics", (trx) => store.readModels(trx));
    assert.deepEqual(rows.map((r) => r.name), ["entity_stats", "tenant_usage_summary"]);
  });

  test("a refresh records its time, duration and rows, and answers FRESH", async () => {
    const before = new Date();
    const [info] = await refreshWhenFree("tenant_usage_summary");
    assert.equal(info!.name, "tenant_usage_summary");
    assert.equal(info!.state, "fresh");
    assert.ok(info!.lastRefreshedAt! >= new Date(before.getTime() - 1000), "refreshed now");
    assert.equal(info!.nextRefreshAt!.getTime(), info!.lastRefreshedAt!.getTime() + INTERVAL_MS);
    assert.ok(info!.lastDurationMs !== null && info!.stalenessMs !== null);
    const { rows } = await knex.raw<{ rows: { n: string }[] }>("select count(*) as n from tenant_usage_summary");
    assert.equal(info!.rowCount, Number(rows[0]!.n));
  });

  test("an event with the contract's largest token counts (2^31 - 1 each) refreshes and sums in bigint", async () => {
    const tenantId = await createTenant(knex);
    const huge = { tokensIn: 2_000_000_000, tokensOut: 2_000_000_000 };
    await withTenant(knex, { service: "analytics", tenantId }, (trx) =>
      insertUsageEvents(trx, tenantId, [
        { id: randomUUID(), occurredAt: new Date(Date.now() - 1000), kind: "llm_call", userId: null, apiKeyId: null, entityId: null,
          entityVersion: null, label: null, model: "m", ...huge, costMicros: 0n, latencyMs: null, metadata: {}, requestId: null },
      ]),
    );
    const [info] = await refreshWhenFree("tenant_usage_summary");
    assert.equal(info!.state, "fresh");
    const { rows } = await withTenant(knex, { service: "analytics", tenantId }, (trx) =>
      trx.raw<{ rows: { tokens_last_30d: string; tokens_this_month: string; events_this_month: string }[] }>(
        "select tokens_last_30d::text, tokens_this_month::text, events_this_month::text from current_tenant_usage_summary",
      ),
    );
    assert.deepEqual(rows, [{ tokens_last_30d: "4000000000", tokens_this_month: "4000000000", events_this_month: "1" }]);
  });

  test("a failure is FAILED until the next successful refresh clears it", async () => {
    await refreshWhenFree("entity_stats");
    await withServiceRole(knex, "analytics", (trx) => store.recordFailure(trx, "entity_stats", new Date(Date.now() + 1000), "boom"));
    const failed = (await readModels.listReadModels(knex, new Date(), INTERVAL_MS)).find((m) => m.name === "entity_stats")!;
    assert.deepEqual([failed.state, failed.lastError], ["failed", "boom"]);
    const [after] = await refreshWhenFree("entity_stats");
    assert.deepEqual([after!.state, after!.lastError], ["fresh", ""]);
  });

  test("while another session refreshes: REFRESHING in the list, and a refresh is ABORTED REFRESH_IN_PROGRESS", { skip: EMBEDDED }, async () => {
    const holder = await knex.transaction();
    try {
      await holder.raw("select pg_advisory_xact_lock(?)", [store.READ_MODEL_LOCK_KEY]);
      const list = await readModels.listReadModels(knex, new Date(), INTERVAL_MS);
      assert.deepEqual(list.map((m) => m.state), ["refreshing", "refreshing"]);
      await assert.rejects(readModels.refreshReadModels(knex, "entity_stats", INTERVAL_MS), isInProgress);
    } finally {
      await holder.rollback();
    }
  });
});
