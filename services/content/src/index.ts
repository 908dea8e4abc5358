import type { UsageReporter } from "@promptcraft/client";
import { usageReporting, type ServiceModule } from "@promptcraft/platform";
import { ContentConfig } from "./config.js";
import { routes } from "./routes.js";

/** What content keeps while it runs: its usage reporter (undefined when reporting is off). */
export interface ContentState {
  usage: UsageReporter | undefined;
}

/**
 * The content service, as `startService` / `runService` take it. Setup starts its usage reporter
 * (reads by label and renders streamed to analytics); shutdown flushes it.
 */
export const contentService: ServiceModule<ContentConfig, ContentState> = {
  name: "content",
  config: ContentConfig,
  setup(deps) {
    const { reporter, metrics } = usageReporting(deps.config, "content", deps.log);
    // BACKGROUND_STOP_MS (1 s) is all close() gets: flush within most of it.
    return Promise.resolve({ state: { usage: reporter }, metrics, close: async () => reporter?.close(800) });
  },
  routes,
};

export { ContentConfig };
