import { platformAdminTokenField, serviceConfig } from "@promptcraft/platform";
import { z } from "zod";
import { LIMIT_FIELDS, type PlanLimits } from "./domain/quotas.js";

const limit = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const planDefaults = z.strictObject(Object.fromEntries(Object.values(LIMIT_FIELDS).map((f) => [f, limit.optional()])));

/**
 * QUOTA_PLAN_LIMITS: JSON `{"<plan>": {"max_monthly_renders": 100000, …}}` with TenantQuotas'
 * monthly field names; parsed into bigints.
 */
const planLimitsField = z
  .string()
  .default("{}")
  .transform((text, ctx): PlanLimits => {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      ctx.addIssue({ code: "custom", message: "must be a JSON object" });
      return z.NEVER;
    }
    const parsed = z.record(z.string().regex(/^[a-z][a-z0-9_-]{0,31}$/, "a plan name"), planDefaults).safeParse(json);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) ctx.addIssue({ code: "custom", message: `${issue.path.join(".")}: ${issue.message}` });
      return z.NEVER;
    }
    return Object.fromEntries(
      Object.entries(parsed.data).map(([plan, limits]) => [plan, Object.fromEntries(Object.entries(limits).flatMap(([f, v]) => (v === undefined ? [] : [[f, BigInt(v)]])))]),
    );
  });

/** The analytics service's configuration (environment variables), parsed once at start. */
export const AnalyticsConfig = serviceConfig(
  { grpcPort: 50055, connectPort: 51055 },
  {
    /**
     * Milliseconds between runs of the usage rollup refresher. Summaries add the not-yet-rolled
     * tail, so this bounds the tail's size, not freshness.
     */
    USAGE_ROLLUP_INTERVAL_MS: z.coerce.number().int().min(100).max(600_000).default(5000),
    /**
     * Milliseconds between reads of the event log while a TailAuditEvents stream is idle (the
     * reader's short poll): the floor of commit-to-delivery latency, one small indexed query per
     * open tail per interval.
     */
    AUDIT_TAIL_POLL_MS: z.coerce.number().int().min(10).max(5000).default(200),
    /**
     * Bearer secret of the platform administrator, the same as identity's: RefreshReadModel and
     * partition maintenance span all tenants. Unset: no platform-admin call is possible.
     */
    PLATFORM_ADMIN_TOKEN: platformAdminTokenField,
    /**
     * Seconds between scheduled refreshes of the read models (one replica at a time; also one at
     * start): 10 to 86400; default 5 minutes. Each refresh recomputes the views in full.
     */
    READ_MODEL_REFRESH_INTERVAL_S: z.coerce.number().int().min(10).max(86_400).default(300),
    /**
     * Seconds between scheduled partition-maintenance rounds (one replica at a time; also one at
     * start): 60 to 86400; default 1 hour. Partitions are made days ahead, so a missed round is harmless.
     */
    PARTITION_MAINTENANCE_INTERVAL_S: z.coerce.number().int().min(60).max(86_400).default(3600),
    /**
     * Default monthly limits per plan (the one place plan defaults live), as JSON:
     * `{"free": {"max_monthly_renders": 100000, "max_monthly_tokens": 1000000}}`. A limit the tenant
     * sets itself (tenant.quotas) wins; a plan not named, or a limit not given, is unlimited.
     * Default `{}`: every limit comes from the tenant's quotas.
     */
    QUOTA_PLAN_LIMITS: planLimitsField,
  },
);
export type AnalyticsConfig = z.infer<typeof AnalyticsConfig>;
