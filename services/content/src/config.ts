import { serviceConfig, unsetIfEmpty } from "@promptcraft/platform";
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
     * The graph service's gRPC URL, which DeleteEntity asks for an entity's dependents (delete
     * protection). Unset: no protection (said at start); `npm start` sets it.
     */
    GRAPH_URL: unsetIfEmpty(z.url({ protocol: /^https?$/, error: "must be an http(s):// URL" }).optional()),
  },
);
export type ContentConfig = z.infer<typeof ContentConfig>;
