import { withTenant, type Knex } from "@promptcraft/db";
import { InvalidArgumentError, type CallerContext } from "@promptcraft/platform";
import { usageCountsByKind } from "../store/rollups.js";
import { tenantQuotaSettings } from "../store/quotas.js";
import { slotEnd, slotStart } from "./summaries.js";

/**
 * Quotas (issue 11, point 4): the caller's tenant's monthly limits against its usage in analytics.
 *
 * A limit comes from the tenant's own quotas (identity's `tenant.quotas`, set by a platform admin
 * through UpdateTenant) or, when the tenant sets none for that metric, from its plan's defaults in
 * QUOTA_PLAN_LIMITS (config.ts: the one place plan defaults live); with neither it is unlimited.
 * Consumption is the tenant's usage this calendar month (UTC), read as every summary is: hourly
 * rollups plus the not-yet-rolled tail (store/rollups.ts), so an acknowledged event counts at once.
 */

/** The metrics analytics measures, in the contract's QuotaMetric order. */
export const MEASURED_METRICS = ["monthly_tokens", "monthly_cost", "monthly_renders", "monthly_events"] as const;
export type MeasuredMetric = (typeof MEASURED_METRICS)[number];
/** Metrics of the contract that analytics does not measure (the owning service counts and enforces them). */
export type UnmeasuredMetric = "users" | "entities" | "api_keys" | "requests_per_minute";

/** The TenantQuotas field (proto name, as stored in `tenant.quotas`) holding each metric's limit. */
export const LIMIT_FIELDS = {
  monthly_tokens: "max_monthly_tokens",
  monthly_cost: "max_monthly_cost_micros",
  monthly_renders: "max_monthly_renders",
  monthly_events: "max_monthly_events",
} as const satisfies Record<MeasuredMetric, string>;
export type LimitField = (typeof LIMIT_FIELDS)[MeasuredMetric];

/** Default limits per plan name (QUOTA_PLAN_LIMITS); a plan not named has none. */
export type PlanLimits = Readonly<Record<string, Readonly<Partial<Record<LimitField, bigint>>>>>;

const WHO_MEASURES: Record<UnmeasuredMetric, string> = {
  users: "users are counted and enforced by the identity service",
  entities: "entities are counted and enforced by the content service",
  api_keys: "API keys are counted and enforced by the identity service",
  requests_per_minute: "requests per minute are not measured",
};

/** The state of one quota in its window. */
export interface QuotaState {
  metric: MeasuredMetric;
  /** Undefined: unlimited. */
  limit: bigint | undefined;
  used: bigint;
  /** limit − used, never negative; undefined when unlimited. */
  remaining: bigint | undefined;
  exceeded: boolean;
  windowStart: Date;
  resetTime: Date;
}

/** A stored limit: a non-negative integer, as a JSON number or (protobuf JSON's int64) a decimal string. */
function limitValue(v: unknown): bigint | undefined {
  if (typeof v === "number" && Number.isSafeInteger(v) && v >= 0) return BigInt(v);
  if (typeof v === "string" && /^\d{1,19}$/.test(v)) return BigInt(v);
  return undefined;
}

/** The limit of `metric`: the tenant's own, else its plan's default, else undefined (unlimited). */
export function limitOf(metric: MeasuredMetric, tenant: { plan: string; quotas: Record<string, unknown> }, planLimits: PlanLimits): bigint | undefined {
  const field = LIMIT_FIELDS[metric];
  return limitValue(tenant.quotas[field]) ?? (Object.hasOwn(planLimits, tenant.plan) ? planLimits[tenant.plan]![field] : undefined);
}

/** The state of a quota with `limit` after `used` in the window. */
export function quotaState(metric: MeasuredMetric, limit: bigint | undefined, used: bigint, windowStart: Date, resetTime: Date): QuotaState {
  return {
    metric,
    limit,
    used,
    remaining: limit === undefined ? undefined : used >= limit ? 0n : limit - used,
    exceeded: limit !== undefined && used >= limit,
    windowStart,
    resetTime,
  };
}

/** Every measured quota of the caller's tenant now, in contract order. Any member. */
export async function listQuotas(db: Knex, caller: CallerContext, planLimits: PlanLimits, now: Date = new Date()): Promise<QuotaState[]> {
  const windowStart = slotStart(now, "month");
  const resetTime = slotEnd(windowStart, "month");
  const { settings, rows } = await withTenant(db, { service: "analytics", tenantId: caller.tenantId, userId: caller.userId, signal: caller.signal }, async (trx) => ({
    settings: await tenantQuotaSettings(trx, caller.tenantId),
    // The whole month, so events stamped a little ahead (the contract allows 5 minutes) count too.
    rows: await usageCountsByKind(trx, caller.tenantId, windowStart, resetTime),
  }));
  const total = rows.find((r) => r.kind === null);
  const used: Record<MeasuredMetric, bigint> = {
    monthly_tokens: total?.tokens ?? 0n,
    monthly_cost: total?.costMicros ?? 0n,
    monthly_renders: rows.find((r) => r.kind === "render")?.eventCount ?? 0n,
    monthly_events: total?.eventCount ?? 0n,
  };
  const tenant = settings ?? { plan: "", quotas: {} };
  return MEASURED_METRICS.map((m) => quotaState(m, limitOf(m, tenant, planLimits), used[m], windowStart, resetTime));
}

/** The answer of {@link checkQuota}. */
export interface QuotaCheck {
  allowed: boolean;
  /** The quota before the consumption. */
  quota: QuotaState;
  /** When not allowed: until the window resets. */
  retryAfterMs: number | undefined;
}

/**
 * Whether consuming `amount` (0 means 1) of `metric` fits in the caller's tenant's quota now:
 * unlimited, or used + amount ≤ limit. Reserves nothing. INVALID_ARGUMENT (`metric`) for a metric
 * analytics does not measure: answering it would mean making up its consumption.
 */
export async function checkQuota(
  db: Knex,
  caller: CallerContext,
  planLimits: PlanLimits,
  metric: MeasuredMetric | UnmeasuredMetric,
  amount: bigint,
  now: Date = new Date(),
): Promise<QuotaCheck> {
  if (!(MEASURED_METRICS as readonly string[]).includes(metric)) {
    throw new InvalidArgumentError({ field: "metric", description: `${WHO_MEASURES[metric as UnmeasuredMetric]}; CheckQuota answers the monthly metrics (tokens, cost, renders, events)` });
  }
  const quota = (await listQuotas(db, caller, planLimits, now)).find((q) => q.metric === metric)!;
  const want = amount === 0n ? 1n : amount;
  const allowed = quota.limit === undefined || quota.used + want <= quota.limit;
  return { allowed, quota, retryAfterMs: allowed ? undefined : Math.max(0, quota.resetTime.getTime() - now.getTime()) };
}
