import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { callerOf, timestampFromDb, type ServiceDeps, type ServiceHandlers } from "@promptcraft/platform";
import type { AnalyticsService } from "@promptcraft/proto/promptcraft/analytics/v1/analytics_service_pb";
import { QuotaMetric, QuotaStatusSchema } from "@promptcraft/proto/promptcraft/analytics/v1/resources_pb";
import type { AnalyticsConfig } from "../config.js";
import * as quotas from "../domain/quotas.js";

// UNSPECIFIED is refused by the proto rules (not_in: [0]) before this map is read.
const METRICS: Record<Exclude<QuotaMetric, QuotaMetric.UNSPECIFIED>, quotas.MeasuredMetric | quotas.UnmeasuredMetric> = {
  [QuotaMetric.USERS]: "users",
  [QuotaMetric.ENTITIES]: "entities",
  [QuotaMetric.MONTHLY_TOKENS]: "monthly_tokens",
  [QuotaMetric.MONTHLY_COST]: "monthly_cost",
  [QuotaMetric.REQUESTS_PER_MINUTE]: "requests_per_minute",
  [QuotaMetric.API_KEYS]: "api_keys",
  [QuotaMetric.MONTHLY_RENDERS]: "monthly_renders",
  [QuotaMetric.MONTHLY_EVENTS]: "monthly_events",
};

const METRIC_ENUMS: Record<quotas.MeasuredMetric, QuotaMetric> = {
  monthly_tokens: QuotaMetric.MONTHLY_TOKENS,
  monthly_cost: QuotaMetric.MONTHLY_COST,
  monthly_renders: QuotaMetric.MONTHLY_RENDERS,
  monthly_events: QuotaMetric.MONTHLY_EVENTS,
};

function statusToProto(q: quotas.QuotaState) {
  return create(QuotaStatusSchema, {
    metric: METRIC_ENUMS[q.metric],
    limit: q.limit,
    used: q.used,
    remaining: q.remaining,
    exceeded: q.exceeded,
    windowStartTime: timestampFromDb(q.windowStart),
    resetTime: timestampFromDb(q.resetTime),
  });
}

/** AnalyticsService quotas: ListQuotas, CheckQuota (rules in domain/quotas.ts). */
export function quotaHandlers(deps: ServiceDeps<AnalyticsConfig>): ServiceHandlers<typeof AnalyticsService> {
  const planLimits = deps.config.QUOTA_PLAN_LIMITS;
  return {
    listQuotas: async (_request, ctx) => ({ quotas: (await quotas.listQuotas(deps.db, callerOf(ctx), planLimits)).map(statusToProto) }),
    checkQuota: async (request, ctx) => {
      const metric = METRICS[request.metric as keyof typeof METRICS];
      const check = await quotas.checkQuota(deps.db, callerOf(ctx), planLimits, metric, request.amount);
      return {
        allowed: check.allowed,
        quota: statusToProto(check.quota),
        retryDelay: check.retryAfterMs === undefined ? undefined : durationFromMs(check.retryAfterMs),
      };
    },
  };
}
