import type { ServiceModule } from "@promptcraft/platform";
import { GraphConfig } from "./config.js";
import { routes } from "./routes.js";

/** The graph service, as `startService` / `runService` take it. */
export const graphService: ServiceModule<GraphConfig> = { name: "graph", config: GraphConfig, routes };

export { GraphConfig };
