import { serve, type ServiceDeps, type ServiceRegistration } from "@promptcraft/platform";
import { AnalyticsService } from "@promptcraft/proto/promptcraft/analytics/v1/analytics_service_pb";
import type { AnalyticsConfig } from "./config.js";
import { analyticsHandlers } from "./handlers/index.js";

/**
 * The RPC services this process serves (health and reflection are added by the platform). Usage
 * ingest also accepts the service credential (SERVICE_TOKEN): the other services report usage.
 */
export function routes(deps: ServiceDeps<AnalyticsConfig>): ServiceRegistration[] {
  return [serve(AnalyticsService, analyticsHandlers(deps), { serviceMethods: ["streamUsageEvents", "ingestUsageEvents"] })];
}
