import type { UsageReporter } from "@promptcraft/client";
import { usageReporting, type ServiceModule } from "@promptcraft/platform";
import { ContentConfig } from "./config.js";
import { graphLookups, type GraphLookups } from "./graph-client.js";
import { routes } from "./routes.js";

/**
 * What content keeps while it runs: its usage reporter (undefined when reporting is off) and its
 * graph lookups — delete protection and composition (undefined when GRAPH_URL is not set).
 */
export interface ContentState {
  usage: UsageReporter | undefined;
  graph: GraphLookups | undefined;
}

/**
 * The content service, as `startService` / `runService` take it. Setup starts its usage reporter
 * (reads by label and renders streamed to analytics) and its graph client; shutdown flushes and closes them.
 */
export const contentService: ServiceModule<ContentConfig, ContentState> = {
  name: "content",
  config: ContentConfig,
  setup(deps) {
    const { reporter, metrics } = usageReporting(deps.config, "content", deps.log);
    const graph = graphLookups(deps.config.GRAPH_URL, deps.log);
    // BACKGROUND_STOP_MS (1 s) is all close() gets: flush within most of it.
    return Promise.resolve({
      state: { usage: reporter, graph: graph.lookups },
      metrics,
      close: async () => {
        graph.close();
        await reporter?.close(800);
      },
    });
  },
  routes,
};

export { ContentConfig };
