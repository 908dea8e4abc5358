import { platformAdminTokenField, serviceConfig } from "@promptcraft/platform";
import { z } from "zod";

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
  },
);
export type AnalyticsConfig = z.infer<typeof AnalyticsConfig>;
