import { create } from "@bufbuild/protobuf";
import { DurationSchema, type Duration } from "@bufbuild/protobuf/wkt";
import { callerOf, dbTimeFromTimestamp, timestampFromDb, type ServiceDeps, type ServiceHandlers } from "@promptcraft/platform";
import type { AnalyticsService } from "@promptcraft/proto/promptcraft/analytics/v1/analytics_service_pb";
import { Granularity, UsageDimension, UsageKind } from "@promptcraft/proto/promptcraft/analytics/v1/resources_pb";
import type { AnalyticsConfig } from "../config.js";
import * as summaries from "../domain/summaries.js";
import type { SummaryDimension, SummaryGranularity } from "../store/rollups.js";
import { KIND_NAMES } from "./usage.js";

const GRANULARITIES: Record<Granularity, SummaryGranularity> = {
  [Granularity.UNSPECIFIED]: "day",
  [Granularity.HOUR]: "hour",
  [Granularity.DAY]: "day",
  [Granularity.MONTH]: "month",
};

// UNSPECIFIED is refused by the proto rules (not_in: [0]) before this map is read.
const DIMENSIONS: Record<Exclude<UsageDimension, UsageDimension.UNSPECIFIED>, SummaryDimension> = {
  [UsageDimension.KIND]: "kind",
  [UsageDimension.MODEL]: "model",
  [UsageDimension.ENTITY]: "entity",
  [UsageDimension.VERSION]: "version",
  [UsageDimension.USER]: "user",
  [UsageDimension.LABEL]: "label",
};

const KINDS_BY_NAME = new Map(Object.entries(KIND_NAMES).map(([k, name]) => [name, Number(k) as UsageKind]));

/** Milliseconds as a Duration, to the microsecond (what PostgreSQL and the histogram can say). */
export function durationOfMs(ms: number | undefined): Duration | undefined {
  if (ms === undefined) return undefined;
  const micros = Math.round(ms * 1000);
  const seconds = Math.floor(micros / 1_000_000);
  return create(DurationSchema, { seconds: BigInt(seconds), nanos: (micros - seconds * 1_000_000) * 1000 });
}

export function totalsToProto(f: summaries.UsageFigures) {
  return {
    eventCount: f.eventCount,
    inputTokens: f.tokensIn,
    outputTokens: f.tokensOut,
    costMicros: f.costMicros,
    averageLatency: durationOfMs(f.averageLatencyMs),
    uniqueUsers: f.uniqueUsers,
    p50Latency: durationOfMs(f.p50LatencyMs),
    p95Latency: durationOfMs(f.p95LatencyMs),
    p99Latency: durationOfMs(f.p99LatencyMs),
  };
}

/** AnalyticsService usage summaries: GetUsageSummary, GetBillingSummary, ListUsageEvents (rules in domain/summaries.ts). */
export function summaryHandlers(deps: ServiceDeps<AnalyticsConfig>): ServiceHandlers<typeof AnalyticsService> {
  const db = deps.db;
  return {
    getUsageSummary: async (request, ctx) => {
      const summary = await summaries.getUsageSummary(db, callerOf(ctx), {
        // Required (the proto rules ran first).
        start: dbTimeFromTimestamp(request.startTime!, "start_time"),
        end: request.endTime ? dbTimeFromTimestamp(request.endTime, "end_time") : undefined,
        granularity: GRANULARITIES[request.granularity],
        groupBy: request.groupBy.map((d) => DIMENSIONS[d as keyof typeof DIMENSIONS]),
        kinds: request.kinds.map((k) => KIND_NAMES[k]),
        entityId: request.entityId.toLowerCase(),
        userId: request.userId.toLowerCase(),
      });
      return {
        buckets: summary.buckets.map((b) => ({
          startTime: timestampFromDb(b.start),
          endTime: timestampFromDb(b.end),
          kind: b.kind === null ? UsageKind.UNSPECIFIED : (KINDS_BY_NAME.get(b.kind) ?? UsageKind.UNSPECIFIED),
          model: b.model ?? "",
          entityId: b.entityId ?? "",
          entityVersion: b.entityVersion ?? 0,
          userId: b.userId ?? "",
          label: b.label ?? "",
          totals: totalsToProto(b.figures),
        })),
        totals: totalsToProto(summary.totals),
        dataFreshnessTime: timestampFromDb(summary.freshness),
      };
    },
    getBillingSummary: async (request, ctx) => {
      const b = await summaries.getBillingSummary(db, callerOf(ctx), request.billingPeriod);
      return {
        tenantId: b.tenantId,
        billingPeriod: b.period,
        periodStartTime: timestampFromDb(b.start),
        periodEndTime: timestampFromDb(b.end),
        plan: b.plan,
        lineItems: b.lines.map((l) => ({ kind: KINDS_BY_NAME.get(l.kind) ?? UsageKind.UNSPECIFIED, model: l.model, totals: totalsToProto(l.figures) })),
        totals: totalsToProto(b.totals),
        currencyCode: "USD",
        final: b.final,
        dataFreshnessTime: timestampFromDb(b.freshness),
      };
    },
    listUsageEvents: async (request, ctx) => {
      const page = await summaries.listUsageEvents(db, callerOf(ctx), {
        start: dbTimeFromTimestamp(request.startTime!, "start_time"),
        end: request.endTime ? dbTimeFromTimestamp(request.endTime, "end_time") : undefined,
        filter: request.filter,
        pageSize: request.pageSize,
        pageToken: request.pageToken,
      });
      return {
        usageEvents: page.events.map((e) => ({
          id: e.id,
          tenantId: e.tenantId,
          userId: e.userId ?? "",
          entityId: e.entityId ?? "",
          entityVersion: e.entityVersion ?? undefined,
          label: e.label ?? "",
          kind: KINDS_BY_NAME.get(e.kind) ?? UsageKind.UNSPECIFIED,
          model: e.model ?? "",
          inputTokens: e.tokensIn,
          outputTokens: e.tokensOut,
          costMicros: e.costMicros,
          latency: e.latencyMs === null ? undefined : durationOfMs(e.latencyMs),
          occurTime: timestampFromDb(e.occurredAt),
          metadata: e.metadata as never,
          requestId: e.requestId ?? "",
          ingestTime: timestampFromDb(e.receivedAt),
        })),
        nextPageToken: page.nextPageToken,
      };
    },
  };
}
