import { afterAll, beforeAll, describe, test } from "vitest";
import assert from "node:assert/strict";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { AnalyticsService } from "@promptcraft/proto/promptcraft/analytics/v1/analytics_service_pb";
import { QuotaMetric, UsageKind, type QuotaStatus } from "@promptcraft/proto/promptcraft/analytics/v1/resources_pb";
import { createTenant } from "@promptcraft/testing";
import { AnalyticsHarness, TEST_SERVICE_TOKEN, usageEvent } from "./analytics-e2e-helpers.js";
import { badFields, failure, ok, PROTOCOLS } from "./rpc-outcomes.js";

/*
 * Quotas end to end (issue 11, point 4): usage ingested through IngestUsageEvents, then read back
 * with ListQuotas and CheckQuota over gRPC and Connect: limits from the tenant's quotas and its
 * plan's defaults (QUOTA_PLAN_LIMITS), consumption from the rollups plus the tail (the refresher
 * runs every 100 ms here, so answers mix both).
 */

const h = new AnalyticsHarness();
const M = AnalyticsService.method;

beforeAll(async () => {
  await h.start({ USAGE_ROLLUP_INTERVAL_MS: "100", QUOTA_PLAN_LIMITS: JSON.stringify({ team: { max_monthly_tokens: 1000, max_monthly_renders: 500 } }) });
});
afterAll(async () => {
  await h.close();
});

/** A quota as [metric, limit, used, remaining, exceeded]. */
const row = (q: QuotaStatus) => [QuotaMetric[q.metric], q.limit, q.used, q.remaining, q.exceeded];

describe("analytics quotas", () => {
  for (const protocol of PROTOCOLS) {
    describe(protocol, () => {
      test("ListQuotas: the month's tokens, cost, renders and events against the tenant's limits, else its plan's, else unlimited", async () => {
        const tenantId = await createTenant(h.db, { plan: "team", quotas: { max_monthly_renders: "3", max_monthly_events: 10 } });
        const m = await h.member("viewer", tenantId);
        const now = new Date();
        const inMonth = timestampFromDate(new Date(Math.max(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1), now.getTime() - 60_000)));
        ok(
          await h.call(
            protocol,
            M.ingestUsageEvents,
            {
              events: [
                usageEvent({ occurTime: inMonth }),
                usageEvent({ occurTime: inMonth }),
                usageEvent({ kind: UsageKind.LLM_CALL, model: "gpt-4o", inputTokens: 100, outputTokens: 50, costMicros: 700n, occurTime: inMonth }),
                usageEvent({ kind: UsageKind.VIEW, occurTime: inMonth }),
              ],
            },
            m.token,
          ),
        );
        const { quotas } = ok(await h.call(protocol, M.listQuotas, {}, m.token));
        assert.deepEqual(quotas.map(row), [
          ["MONTHLY_TOKENS", 1000n, 150n, 850n, false],
          ["MONTHLY_COST", undefined, 700n, undefined, false],
          ["MONTHLY_RENDERS", 3n, 2n, 1n, false],
          ["MONTHLY_EVENTS", 10n, 4n, 6n, false],
        ]);
        const monthStart = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
        const nextMonth = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1));
        for (const q of quotas) {
          assert.equal(timestampDate(q.windowStartTime!).toISOString(), monthStart.toISOString());
          assert.equal(timestampDate(q.resetTime!).toISOString(), nextMonth.toISOString());
        }

        // One more render fits; two do not, with the time until the month ends.
        const one = ok(await h.call(protocol, M.checkQuota, { metric: QuotaMetric.MONTHLY_RENDERS }, m.token));
        assert.deepEqual([one.allowed, row(one.quota!), one.retryDelay], [true, ["MONTHLY_RENDERS", 3n, 2n, 1n, false], undefined]);
        const two = ok(await h.call(protocol, M.checkQuota, { metric: QuotaMetric.MONTHLY_RENDERS, amount: 2n }, m.token));
        assert.equal(two.allowed, false);
        const delayMs = Number(two.retryDelay!.seconds) * 1000;
        assert.ok(delayMs > 0 && delayMs <= nextMonth.getTime() - now.getTime(), `retry delay ${delayMs} ms ends with the month`);
        const cost = ok(await h.call(protocol, M.checkQuota, { metric: QuotaMetric.MONTHLY_COST, amount: 1_000_000_000n }, m.token));
        assert.equal(cost.allowed, true, "no limit: unlimited");

        // The next render is counted the moment its ingest is acknowledged: the quota is used up.
        ok(await h.call(protocol, M.ingestUsageEvents, { events: [usageEvent({ occurTime: inMonth })] }, m.token));
        const full = ok(await h.call(protocol, M.checkQuota, { metric: QuotaMetric.MONTHLY_RENDERS }, m.token));
        assert.deepEqual([full.allowed, row(full.quota!)], [false, ["MONTHLY_RENDERS", 3n, 3n, 0n, true]]);
      });

      test("each tenant sees its own quotas only; the service credential reads none", async () => {
        const a = await h.member("editor");
        const b = await h.member("editor");
        ok(await h.call(protocol, M.ingestUsageEvents, { events: [usageEvent(), usageEvent()] }, a.token));
        const events = (token: string) => h.call(protocol, M.listQuotas, {}, token).then((o) => ok(o).quotas.find((q) => q.metric === QuotaMetric.MONTHLY_EVENTS)!.used);
        assert.deepEqual([await events(a.token), await events(b.token)], [2n, 0n]);
        const checked = ok(await h.call(protocol, M.checkQuota, { metric: QuotaMetric.MONTHLY_EVENTS }, b.token));
        assert.equal(checked.quota!.used, 0n);
        assert.equal(failure(await h.call(protocol, M.checkQuota, { metric: QuotaMetric.MONTHLY_EVENTS }, TEST_SERVICE_TOKEN)).code, "UNAUTHENTICATED");
        assert.equal(failure(await h.call(protocol, M.listQuotas, {})).code, "UNAUTHENTICATED");
      });

      test("CheckQuota: bad input is INVALID_ARGUMENT naming the field; metrics analytics does not measure are refused on `metric`", async () => {
        const m = await h.member("viewer");
        for (const [request, field] of [
          [{}, "metric"],
          [{ metric: 99 as QuotaMetric }, "metric"],
          [{ metric: QuotaMetric.MONTHLY_RENDERS, amount: -1n }, "amount"],
          [{ metric: QuotaMetric.USERS }, "metric"],
          [{ metric: QuotaMetric.ENTITIES }, "metric"],
          [{ metric: QuotaMetric.API_KEYS }, "metric"],
          [{ metric: QuotaMetric.REQUESTS_PER_MINUTE }, "metric"],
        ] as const) {
          const outcome = await h.call(protocol, M.checkQuota, request, m.token);
          assert.deepEqual([failure(outcome).code, badFields(outcome)], ["INVALID_ARGUMENT", [field]], JSON.stringify(request, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v)));
        }
      });
    });
  }
});
