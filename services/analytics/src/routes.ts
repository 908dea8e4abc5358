import { serve, type ServiceDeps, type ServiceRegistration } from "@promptcraft/platform";
import { AnalyticsService } from "@promptcraft/proto/promptcraft/analytics/v1/analytics_service_pb";
import type { AnalyticsConfig } from "./config.js";
import { analyticsHandlers } from "./handlers/index.js";
import type { AnalyticsState } from "./index.js";
import { usageBatchViolations } from "./handlers/usage-validation.js";

/**
 * AnalyticsService methods that check the platform-admin credential themselves (the platform's
 * access-token check would refuse that secret before the handler runs).
 */
export const PUBLIC_ANALYTICS_METHODS = [
  "listReadModels",
  "refreshReadModel",
  "getPartitionMaintenanceStatus",
  "runPartitionMaintenance",
] as const satisfies readonly (keyof (typeof AnalyticsService)["method"])[];

/**
 * The RPC services this process serves (health and reflection are added by the platform). Usage
 * ingest also accepts the service credential (SERVICE_TOKEN): the other services report usage.
 */
export function routes(deps: ServiceDeps<AnalyticsConfig>, state: AnalyticsState): ServiceRegistration[] {
  return [
    serve(AnalyticsService, analyticsHandlers(deps, state.content), {
      publicMethods: PUBLIC_ANALYTICS_METHODS,
      serviceMethods: ["streamUsageEvents", "ingestUsageEvents"],
      // The hot path: the proto rules of a usage batch, checked by hand (see usage-validation.ts).
      validators: { streamUsageEvents: usageBatchViolations, ingestUsageEvents: usageBatchViolations },
    }),
  ];
}
