import { serviceConfig } from "@promptcraft/platform";
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
  },
);
export type AnalyticsConfig = z.infer<typeof AnalyticsConfig>;
