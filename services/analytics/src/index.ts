import type { ServiceModule } from "@promptcraft/platform";
import { AnalyticsConfig } from "./config.js";
import { routes } from "./routes.js";

/** The analytics service, as `startService` / `runService` take it. */
export const analyticsService: ServiceModule<AnalyticsConfig> = { name: "analytics", config: AnalyticsConfig, routes };

export { AnalyticsConfig };
