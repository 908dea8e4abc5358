import type { PeerClient, ServiceDeps, ServiceHandlers } from "@promptcraft/platform";
import type { AnalyticsService } from "@promptcraft/proto/promptcraft/analytics/v1/analytics_service_pb";
import type { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import type { AnalyticsConfig } from "../config.js";
import { UsageIngest } from "../domain/usage.js";
import { auditHandlers } from "./audit.js";
import { entityStatsHandlers } from "./entity-stats.js";
import { maintenanceHandlers } from "./maintenance.js";
import { quotaHandlers } from "./quotas.js";
import { summaryHandlers } from "./summaries.js";
import { usageHandlers } from "./usage.js";

/**
 * Handlers of `promptcraft.analytics.v1.AnalyticsService`, one file per area, spread together. A
 * method no area implements yet answers UNIMPLEMENTED (the platform does that), never made-up data.
 */
export function analyticsHandlers(deps: ServiceDeps<AnalyticsConfig>, content: PeerClient<typeof ContentService>): ServiceHandlers<typeof AnalyticsService> {
  return {
    ...usageHandlers(new UsageIngest(deps.db)),
    ...auditHandlers(deps),
    ...maintenanceHandlers(deps),
    ...summaryHandlers(deps),
    ...entityStatsHandlers(deps, content),
    ...quotaHandlers(deps),
  };
}
