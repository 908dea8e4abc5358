import type { ServiceModule } from "@promptcraft/platform";
import { SearchConfig } from "./config.js";
import { routes } from "./routes.js";

/** The search service, as `startService` / `runService` take it. */
export const searchService: ServiceModule<SearchConfig> = { name: "search", config: SearchConfig, routes };

export { SearchConfig };
