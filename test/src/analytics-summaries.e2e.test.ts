import { afterAll, beforeAll, describe, test } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { timestampFromDate, timestampDate } from "@bufbuild/protobuf/wkt";
import { AnalyticsService } from "@promptcraft/proto/promptcraft/analytics/v1/analytics_service_pb";
import { Granularity, UsageDimension, UsageKind } from "@promptcraft/proto/promptcraft/analytics/v1/resources_pb";
import { AnalyticsHarness, usageEvent } from "./analytics-e2e-helpers.js";
import { badFields, failure, ok, PROTOCOLS } from "./rpc-outcomes.js";

/*
 * Usage summaries end to end (issue 11, point 3): events ingested through IngestUsageEvents, then
 * read with GetUsageSummary (rollups + tail: the refresher runs every 100 ms here, so answers mix
 * both) and ListUsageEvents, over gRPC and Connect.
 */

const h = new AnalyticsHarness();
const M = AnalyticsService.method;
const HOUR = 3_600_000;
const at = (ms: number) => timestampFromDate(new Date(ms));
const durMs = (d: { seconds: bigint; nanos: number } | undefined) => (d === undefined ? undefined : Number(d.seconds) * 1000 + d.nanos / 1e6);

beforeAll(async () => {
  await h.start({ USAGE_ROLLUP_INTERVAL_MS: "100" });
});
afterAll(async () => {
  await h.close();
});

describe("analytics summaries", () => {
  for (const protocol of PROTOCOLS) {
    describe(protocol, () => {
      test("GetUsageSummary counts an event as soon as its ingest is acknowledged: buckets by hour, grouped by model and by version, percentiles", async () => {
        const m = await h.member();
        const hour = Math.floor(Date.now() / HOUR) * HOUR;
        // The previous hour, so every event is in one bucket whatever the minute now.
        const t = hour - HOUR + 60_000;
        const entity = randomUUID();
        const llm = (model: string, latencyMs: number, version: number) =>
          usageEvent({ kind: UsageKind.LLM_CALL, occurTime: at(t), model, inputTokens: 10, outputTokens: 5, costMicros: 1000n, latency: { seconds: BigInt(Math.floor(latencyMs / 1000)), nanos: (latencyMs % 1000) * 1e6 }, entityId: entity, entityVersion: version });
        const events = [llm("gpt-4o", 100, 7), llm("gpt-4o", 120, 7), llm("gpt-4o-mini", 2000, 8), usageEvent({ occurTime: at(t), entityId: entity, entityVersion: 8 })];
        ok(await h.call(protocol, M.ingestUsageEvents, { events }, m.token));
        const request = { startTime: at(hour - 2 * HOUR), endTime: at(hour + HOUR), granularity: Granularity.HOUR };

        const byModel = ok(await h.call(protocol, M.getUsageSummary, { ...request, groupBy: [UsageDimension.MODEL] }, m.token));
        assert.equal(byModel.totals?.eventCount, 4n);
        assert.equal(byModel.totals?.inputTokens, 30n);
        assert.equal(byModel.totals?.costMicros, 3000n);
        assert.equal(byModel.totals?.uniqueUsers, 1n);
        assert.deepEqual(
          byModel.buckets.map((b) => [timestampDate(b.startTime!).getTime(), b.model, b.totals?.eventCount]),
          // By descending cost within the slot.
          [
            [hour - HOUR, "gpt-4o", 2n],
            [hour - HOUR, "gpt-4o-mini", 1n],
            [hour - HOUR, "", 1n],
          ],
        );
        const p50 = durMs(byModel.buckets[0]!.totals?.p50Latency)!;
        assert.ok(p50 >= 100 && p50 < 150, `p50 ${p50}`);
        const p99 = durMs(byModel.totals?.p99Latency)!;
        assert.ok(p99 >= 1500 && p99 <= 3000, `p99 ${p99}`);
        assert.equal(durMs(byModel.totals?.averageLatency), (100 + 120 + 2000) / 3);

        const byVersion = ok(await h.call(protocol, M.getUsageSummary, { ...request, groupBy: [UsageDimension.VERSION], kinds: [UsageKind.LLM_CALL] }, m.token));
        assert.deepEqual(
          byVersion.buckets.map((b) => [b.entityId, b.entityVersion, b.totals?.eventCount]).sort(),
          [
            [entity, 7, 2n],
            [entity, 8, 1n],
          ].sort(),
        );

        // Another tenant sees nothing of it.
        const other = await h.member();
        const none = ok(await h.call(protocol, M.getUsageSummary, request, other.token));
        assert.deepEqual([none.buckets.length, none.totals?.eventCount], [0, 0n]);

        // The same answer once the refresher has rolled everything up.
        await until(async () => {
          const { rows } = await h.db.raw<{ rows: { n: number }[] }>("select coalesce(sum(event_count), 0)::int as n from usage_rollup where tenant_id = ?", [m.tenantId]);
          return rows[0]!.n === 4;
        });
        const again = ok(await h.call(protocol, M.getUsageSummary, { ...request, groupBy: [UsageDimension.MODEL] }, m.token));
        assert.deepEqual(again.buckets, byModel.buckets);
      });

      test("GetUsageSummary refuses a bad range or dimension with INVALID_ARGUMENT naming the field", async () => {
        const m = await h.member();
        const now = Date.now();
        const backwards = await h.call(protocol, M.getUsageSummary, { startTime: at(now), endTime: at(now - HOUR) }, m.token);
        assert.equal(failure(backwards).code, "INVALID_ARGUMENT");
        const tooMany = await h.call(protocol, M.getUsageSummary, { startTime: at(now - 60 * 24 * HOUR), endTime: at(now), granularity: Granularity.HOUR }, m.token);
        assert.deepEqual([failure(tooMany).code, badFields(tooMany)], ["INVALID_ARGUMENT", ["end_time"]]);
        const unspecified = await h.call(protocol, M.getUsageSummary, { startTime: at(now - HOUR), groupBy: [UsageDimension.UNSPECIFIED] }, m.token);
        assert.deepEqual([failure(unspecified).code, badFields(unspecified)], ["INVALID_ARGUMENT", ["group_by[0]"]]);
        const noStart = await h.call(protocol, M.getUsageSummary, {}, m.token);
        assert.deepEqual(badFields(noStart), ["start_time"]);
      });

      test("GetBillingSummary: the month's usage per kind and model, by descending cost, for admins", async () => {
        const admin = await h.member("admin");
        const editor = await h.member("editor", admin.tenantId);
        const now = new Date();
        ok(
          await h.call(
            protocol,
            M.ingestUsageEvents,
            {
              events: [
                usageEvent({ kind: UsageKind.LLM_CALL, model: "gpt-4o", costMicros: 500n, inputTokens: 3, occurTime: at(now.getTime() - 1000) }),
                usageEvent({ kind: UsageKind.LLM_CALL, model: "gpt-4o", costMicros: 700n, inputTokens: 4, occurTime: at(now.getTime() - 2000) }),
                usageEvent({ kind: UsageKind.RENDER, occurTime: at(now.getTime() - 3000) }),
              ],
            },
            editor.token,
          ),
        );
        const b = ok(await h.call(protocol, M.getBillingSummary, {}, admin.token));
        const period = `${now.getUTCFullYear()}-${String(now.getUTCMonth() + 1).padStart(2, "0")}`;
        assert.equal(b.billingPeriod, period);
        assert.equal(b.tenantId, admin.tenantId);
        assert.equal(b.currencyCode, "USD");
        assert.equal(b.final, false);
        assert.deepEqual(
          b.lineItems.map((l) => [l.kind, l.model, l.totals?.eventCount, l.totals?.costMicros]),
          [
            [UsageKind.LLM_CALL, "gpt-4o", 2n, 1200n],
            [UsageKind.RENDER, "", 1n, 0n],
          ],
        );
        assert.deepEqual([b.totals?.eventCount, b.totals?.inputTokens, b.totals?.costMicros], [3n, 7n, 1200n]);
        assert.equal(timestampDate(b.periodStartTime!).toISOString(), `${period}-01T00:00:00.000Z`);
        const past = ok(await h.call(protocol, M.getBillingSummary, { billingPeriod: "2020-01" }, admin.token));
        assert.deepEqual([past.lineItems.length, past.totals?.eventCount, past.final], [0, 0n, true]);

        assert.equal(failure(await h.call(protocol, M.getBillingSummary, {}, editor.token)).code, "PERMISSION_DENIED");
        const bad = await h.call(protocol, M.getBillingSummary, { billingPeriod: "2026-13" }, admin.token);
        assert.deepEqual([failure(bad).code, badFields(bad)], ["INVALID_ARGUMENT", ["billing_period"]]);
      });

      test("ListUsageEvents filters (AIP-160) and pages newest first; bad filters, tokens and ranges are INVALID_ARGUMENT", async () => {
        const m = await h.member();
        const now = Date.now();
        const events = Array.from({ length: 5 }, (_, i) =>
          usageEvent({ kind: UsageKind.LLM_CALL, model: i < 4 ? "gpt-4o" : "claude", occurTime: at(now - (i + 1) * 60_000), costMicros: 1234n, requestId: `r-${i}` }),
        );
        ok(await h.call(protocol, M.ingestUsageEvents, { events: [...events, usageEvent({ occurTime: at(now - 30_000) })] }, m.token));
        const base = { startTime: at(now - HOUR), filter: 'kind = USAGE_KIND_LLM_CALL AND model = "gpt-*"', pageSize: 3 };
        const first = ok(await h.call(protocol, M.listUsageEvents, base, m.token));
        assert.deepEqual(
          first.usageEvents.map((e) => e.id),
          events.slice(0, 3).map((e) => e.id),
        );
        assert.equal(first.usageEvents[0]!.costMicros, 1234n);
        assert.equal(first.usageEvents[0]!.requestId, "r-0");
        assert.equal(first.usageEvents[0]!.tenantId, m.tenantId);
        const second = ok(await h.call(protocol, M.listUsageEvents, { ...base, pageToken: first.nextPageToken }, m.token));
        assert.deepEqual(
          second.usageEvents.map((e) => e.id),
          [events[3]!.id],
        );
        assert.equal(second.nextPageToken, "");

        const other = await h.member();
        assert.equal(ok(await h.call(protocol, M.listUsageEvents, { startTime: at(now - HOUR) }, other.token)).usageEvents.length, 0);

        const badFilter = await h.call(protocol, M.listUsageEvents, { startTime: at(now - HOUR), filter: "entity_id = 42" }, m.token);
        assert.deepEqual([failure(badFilter), badFields(badFilter)], [{ code: "INVALID_ARGUMENT", reason: "FILTER_INVALID" }, ["filter"]]);
        const badToken = await h.call(protocol, M.listUsageEvents, { ...base, filter: "", pageToken: first.nextPageToken }, m.token);
        assert.deepEqual([failure(badToken), badFields(badToken)], [{ code: "INVALID_ARGUMENT", reason: "PAGE_TOKEN_INVALID" }, ["page_token"]]);
        const tooLong = await h.call(protocol, M.listUsageEvents, { startTime: at(now - 40 * 24 * HOUR), endTime: at(now) }, m.token);
        assert.deepEqual([failure(tooLong).code, badFields(tooLong)], ["INVALID_ARGUMENT", ["end_time"]]);
      });
    });
  }
});

async function until(check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 400 && !(await check()); i++) await new Promise((r) => setTimeout(r, 25));
}
