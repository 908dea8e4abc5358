import { serviceConfig } from "@promptcraft/platform";
import { z } from "zod";

/** The content service's configuration (environment variables), parsed once at start. */
export const ContentConfig = serviceConfig(
  { grpcPort: 50052, connectPort: 51052 },
  {
    /**
     * Days a soft-deleted entity stays restorable before PurgeEntity may remove it without
     * `force` (its purge_time). Service-wide: the content role may not read tenant settings.
     */
    SOFT_DELETE_RETENTION_DAYS: z.coerce.number().min(0).max(3650).default(30),
    /**
     * Milliseconds an answer of analytics' CheckQuota (monthly renders) is reused per tenant before
     * RenderTemplate asks again (platform quota-gate.ts); 0 asks on every render. Bounds how stale
     * the render quota may be across replicas.
     */
    QUOTA_CACHE_MS: z.coerce.number().int().min(0).max(300_000).default(5000),
    /** Deadline of that CheckQuota call: past it (or analytics down) the render is allowed unchecked and logged. */
    QUOTA_CHECK_TIMEOUT_MS: z.coerce.number().int().min(10).max(5000).default(250),
  },
);
export type ContentConfig = z.infer<typeof ContentConfig>;
