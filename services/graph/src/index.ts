import type { UsageReporter } from "@promptcraft/client";
import { peerClient, usageReporting, type PeerClient, type ServiceModule } from "@promptcraft/platform";
import { AnalyticsService } from "@promptcraft/proto/promptcraft/analytics/v1/analytics_service_pb";
import { SearchService } from "@promptcraft/proto/promptcraft/search/v1/search_service_pb";
import { GraphConfig } from "./config.js";
import { routes } from "./routes.js";

/** What graph keeps while it runs: its search and analytics clients and its usage reporter (undefined when reporting is off). */
export interface GraphState {
  /** Finds entities similar in meaning for GenerateSuggestions (SEARCH_URL), on behalf of each caller. */
  search: PeerClient<typeof SearchService>;
  /** Finds entities used in the same requests for GenerateSuggestions (ANALYTICS_URL), on behalf of each caller. */
  analytics: PeerClient<typeof AnalyticsService>;
  usage: UsageReporter | undefined;
}

/**
 * The graph service, as `startService` / `runService` take it. Setup starts its usage reporter
 * (`resolve` per ResolveDependencies) and its search and analytics clients; shutdown flushes and closes them.
 */
export const graphService: ServiceModule<GraphConfig, GraphState> = {
  name: "graph",
  config: GraphConfig,
  setup(deps) {
    const usage = usageReporting(deps.config, "graph", deps.log);
    const search = peerClient(SearchService, deps.config.SEARCH_URL, deps.tracer);
    const analytics = peerClient(AnalyticsService, deps.config.ANALYTICS_URL, deps.tracer);
    const close = async () => {
      search.close();
      analytics.close();
      await usage.close();
    };
    return Promise.resolve({ state: { usage: usage.reporter, search, analytics }, metrics: usage.metrics, close });
  },
  routes,
};

export { GraphConfig };
