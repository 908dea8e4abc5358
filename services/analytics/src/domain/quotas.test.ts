import { afterAll, beforeAll, describe, test } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { withTenant, type Knex } from "@promptcraft/db";
import { InvalidArgumentError, loadConfig, type CallerContext } from "@promptcraft/platform";
import { createTenant, openTestKnex } from "@promptcraft/testing";
import { AnalyticsConfig } from "../config.js";
import { refreshUsageRollup } from "../store/rollups.js";
import { insertUsageEvents, type NewUsageEvent } from "../store/usage.js";
import { checkQuota, limitOf, listQuotas, quotaState, type PlanLimits } from "./quotas.js";
import { usageEvent } from "../store/usage-event-fixture.js";

/*
 * Domain tier of quotas: limits from the tenant's quotas and its plan's defaults, and consumption
 * from the tenant's usage on the real database (rolled-up hours and the tail together), as
 * promptcraft_analytics under row-level security.
 */

let knex: Knex;
beforeAll(() => {
  knex = openTestKnex("analytics-domain-quotas");
});
afterAll(async () => {
  await knex.destroy();
});

const PLANS: PlanLimits = { team: { max_monthly_renders: 1000n, max_monthly_tokens: 500n } };
const caller = (tenantId: string): CallerContext => ({ tenantId, userId: randomUUID(), role: "viewer", kind: "access_token", signal: new AbortController().signal });
const monthStart = (t: Date) => new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth(), 1));

function event(occurredAt: Date, overrides: Partial<NewUsageEvent> = {}): NewUsageEvent {
  return usageEvent({ occurredAt, ...overrides });
}

describe("domain/quotas", () => {
  test("a limit is the tenant's own, else its plan's default, else unlimited; int64 JSON strings are read", () => {
    assert.equal(limitOf("monthly_renders", { plan: "team", quotas: {} }, PLANS), 1000n);
    assert.equal(limitOf("monthly_renders", { plan: "team", quotas: { max_monthly_renders: "7" } }, PLANS), 7n);
    assert.equal(limitOf("monthly_renders", { plan: "team", quotas: { max_monthly_renders: 0 } }, PLANS), 0n, "0 allows nothing, not unlimited");
    assert.equal(limitOf("monthly_events", { plan: "team", quotas: {} }, PLANS), undefined);
    assert.equal(limitOf("monthly_renders", { plan: "free", quotas: {} }, PLANS), undefined);
    assert.equal(limitOf("monthly_renders", { plan: "constructor", quotas: {} }, PLANS), undefined, "only the plan's own entries");
  });

  test("a quota's remaining never goes negative; unlimited has neither remaining nor exceeded", () => {
    const w = new Date("2026-12-01T00:00:00Z");
    const r = new Date("2027-01-01T00:00:00Z");
    assert.deepEqual(quotaState("monthly_events", 10n, 12n, w, r), { metric: "monthly_events", limit: 10n, used: 12n, remaining: 0n, exceeded: true, windowStart: w, resetTime: r });
    assert.deepEqual(quotaState("monthly_events", 10n, 3n, w, r).remaining, 7n);
    const open = quotaState("monthly_events", undefined, 3n, w, r);
    assert.deepEqual([open.remaining, open.exceeded], [undefined, false]);
  });

  test("QUOTA_PLAN_LIMITS parses plan defaults into bigints and refuses unknown fields", () => {
    const env = { DATABASE_URL: "postgres://x@127.0.0.1/x" };
    assert.deepEqual(loadConfig(AnalyticsConfig, env).QUOTA_PLAN_LIMITS, {});
    assert.deepEqual(loadConfig(AnalyticsConfig, { ...env, QUOTA_PLAN_LIMITS: '{"free":{"max_monthly_renders":100}}' }).QUOTA_PLAN_LIMITS, { free: { max_monthly_renders: 100n } });
    assert.throws(() => loadConfig(AnalyticsConfig, { ...env, QUOTA_PLAN_LIMITS: '{"free":{"max_users":5}}' }));
    assert.throws(() => loadConfig(AnalyticsConfig, { ...env, QUOTA_PLAN_LIMITS: "{" }));
  });

  test("usage this month counts (rolled and not yet rolled), last month's does not; another tenant's never", async () => {
    const now = new Date();
    const start = monthStart(now);
    const tenantId = await createTenant(knex, { plan: "team", quotas: { max_monthly_events: "5", max_monthly_cost_micros: 100 } });
    const other = await createTenant(knex, { plan: "team" });
    const inMonth = new Date(Math.max(start.getTime(), now.getTime() - 60_000));
    const lastMonth = new Date(start.getTime() - 3_600_000);
    const insert = (t: string, events: NewUsageEvent[]) => withTenant(knex, { service: "analytics", tenantId: t }, (trx) => insertUsageEvents(trx, t, events));
    await insert(tenantId, [
      event(inMonth),
      event(inMonth),
      event(inMonth, { kind: "llm_call", model: "m", tokensIn: 100, tokensOut: 50, costMicros: 40n }),
      event(lastMonth),
      event(lastMonth, { kind: "llm_call", tokensIn: 1000, costMicros: 1000n }),
    ]);
    await insert(other, [event(inMonth), event(inMonth)]);
    // Some of it rolled up, the rest in the tail: the figures are the same either way.
    await refreshUsageRollup(knex);
    await insert(tenantId, [event(inMonth, { kind: "view", costMicros: 70n })]);

    const quotas = await listQuotas(knex, caller(tenantId), PLANS, now);
    const byMetric = Object.fromEntries(quotas.map((q) => [q.metric, [q.limit, q.used, q.remaining, q.exceeded]]));
    assert.deepEqual(byMetric, {
      monthly_tokens: [500n, 150n, 350n, false],
      monthly_cost: [100n, 110n, 0n, true],
      monthly_renders: [1000n, 2n, 998n, false],
      monthly_events: [5n, 4n, 1n, false],
    });
    assert.deepEqual(quotas.map((q) => q.metric), ["monthly_tokens", "monthly_cost", "monthly_renders", "monthly_events"]);
    assert.equal(quotas[0]!.windowStart.toISOString(), start.toISOString());
    assert.equal(quotas[0]!.resetTime.toISOString(), new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1)).toISOString());

    assert.equal((await checkQuota(knex, caller(tenantId), PLANS, "monthly_events", 0n, now)).allowed, true, "0 means 1");
    const over = await checkQuota(knex, caller(tenantId), PLANS, "monthly_events", 2n, now);
    assert.equal(over.allowed, false);
    assert.equal(over.retryAfterMs, over.quota.resetTime.getTime() - now.getTime());
    assert.equal((await checkQuota(knex, caller(tenantId), {}, "monthly_renders", 1_000_000n, now)).allowed, true, "no limit anywhere: unlimited");
    const others = await listQuotas(knex, caller(other), {}, now);
    assert.equal(others.find((q) => q.metric === "monthly_events")!.used, 2n);
  });

  test("metrics analytics does not measure are refused on `metric`, not answered with made-up usage", async () => {
    const tenantId = await createTenant(knex);
    for (const metric of ["users", "entities", "api_keys", "requests_per_minute"] as const) {
      await assert.rejects(checkQuota(knex, caller(tenantId), {}, metric, 1n), (err: unknown) => err instanceof InvalidArgumentError && err.violations[0]!.field === "metric");
    }
  });
});
