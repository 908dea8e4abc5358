import type { UsageReporter } from "@promptcraft/client";
import { peerClient, usageReporting, type PeerClient, type ServiceModule } from "@promptcraft/platform";
import { GraphService } from "@promptcraft/proto/promptcraft/graph/v1/graph_service_pb";
import { ContentConfig } from "./config.js";
import { routes } from "./routes.js";

/** What content keeps while it runs: its usage reporter (undefined when reporting is off) and its graph client. */
export interface ContentState {
  usage: UsageReporter | undefined;
  /** Resolves the partials of templates (GRAPH_URL), on behalf of each caller. */
  graph: PeerClient<typeof GraphService>;
}

/**
 * The content service, as `startService` / `runService` take it. Setup starts its usage reporter
 * (reads by label and renders streamed to analytics) and its graph client; shutdown flushes the
 * reporter and closes the client.
 */
export const contentService: ServiceModule<ContentConfig, ContentState> = {
  name: "content",
  config: ContentConfig,
  setup(deps) {
    const { reporter, metrics } = usageReporting(deps.config, "content", deps.log);
    const graph = peerClient(GraphService, deps.config.GRAPH_URL, deps.tracer);
    const close = async () => {
      graph.close();
      // BACKGROUND_STOP_MS (1 s) is all close() gets: flush within most of it.
      await reporter?.close(800);
    };
    return Promise.resolve({ state: { usage: reporter, graph }, metrics, close });
  },
  routes,
};

export { ContentConfig };
