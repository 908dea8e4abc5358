import type { ServiceModule } from "@promptcraft/platform";
import { AnalyticsConfig } from "./config.js";
import { startRollupRefresher } from "./domain/summaries.js";
import { routes } from "./routes.js";

/** The analytics service, as `startService` / `runService` take it. */
export const analyticsService: ServiceModule<AnalyticsConfig> = {
  name: "analytics",
  config: AnalyticsConfig,
  // The usage rollup refresher (domain/summaries.ts) runs beside the server; summaries never wait for it.
  setup({ config, db, log }) {
    const refresher = startRollupRefresher(db, config.USAGE_ROLLUP_INTERVAL_MS, log);
    return Promise.resolve({ state: undefined, close: () => refresher.stop() });
  },
  routes,
};

export { AnalyticsConfig };
