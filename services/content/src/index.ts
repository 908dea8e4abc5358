import type { UsageReporter } from "@promptcraft/client";
import { peerClient, QuotaGate, usageReporting, type PeerClient, type ServiceModule } from "@promptcraft/platform";
import { QuotaMetric } from "@promptcraft/proto/promptcraft/analytics/v1/resources_pb";
import { GraphService } from "@promptcraft/proto/promptcraft/graph/v1/graph_service_pb";
import { SearchService } from "@promptcraft/proto/promptcraft/search/v1/search_service_pb";
import { ContentConfig } from "./config.js";
import { routes } from "./routes.js";

/**
 * What content keeps while it runs: its usage reporter (undefined when reporting is off), its graph
 * and search clients, and the render quota check (analytics' CheckQuota of QUOTA_METRIC_MONTHLY_RENDERS, per tenant).
 */
export interface ContentState {
  usage: UsageReporter | undefined;
  /** Resolves the partials of templates (GRAPH_URL), on behalf of each caller. */
  graph: PeerClient<typeof GraphService>;
  /** Checks saves for near duplicates (SEARCH_URL), on behalf of each caller. */
  search: PeerClient<typeof SearchService>;
  /** Refuses renders past the tenant's monthly render quota (ANALYTICS_URL). */
  renderQuota: QuotaGate;
}

/**
 * The content service, as `startService` / `runService` take it. Setup starts its usage reporter
 * (reads by label and renders streamed to analytics), its graph and search clients and its render quota check;
 * shutdown flushes the reporter and closes the clients.
 */
export const contentService: ServiceModule<ContentConfig, ContentState> = {
  name: "content",
  config: ContentConfig,
  setup(deps) {
    const usage = usageReporting(deps.config, "content", deps.log);
    const graph = peerClient(GraphService, deps.config.GRAPH_URL, deps.tracer);
    const search = peerClient(SearchService, deps.config.SEARCH_URL, deps.tracer);
    const renderQuota = new QuotaGate({
      analyticsUrl: deps.config.ANALYTICS_URL,
      metric: QuotaMetric.MONTHLY_RENDERS,
      cacheMs: deps.config.QUOTA_CACHE_MS,
      timeoutMs: deps.config.QUOTA_CHECK_TIMEOUT_MS,
      log: deps.log.child({ component: "render-quota" }),
      tracer: deps.tracer,
    });
    const close = async () => {
      graph.close();
      search.close();
      renderQuota.close();
      await usage.close();
    };
    return Promise.resolve({ state: { usage: usage.reporter, graph, search, renderQuota }, metrics: [...usage.metrics, ...renderQuota.metrics], close });
  },
  routes,
};

export { ContentConfig };
