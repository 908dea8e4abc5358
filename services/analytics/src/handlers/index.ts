import type { ServiceDeps, ServiceHandlers } from "@promptcraft/platform";
import type { AnalyticsService } from "@promptcraft/proto/promptcraft/analytics/v1/analytics_service_pb";
import type { AnalyticsConfig } from "../config.js";

/**
 * Handlers of `promptcraft.analytics.v1.AnalyticsService`. None is built yet: every method answers
 * UNIMPLEMENTED (the platform does that for a method without a handler), never made-up data.
 */
export function analyticsHandlers(_deps: ServiceDeps<AnalyticsConfig>): ServiceHandlers<typeof AnalyticsService> {
  return {};
}
