import type { ServiceModule } from "@promptcraft/platform";
import { ContentConfig } from "./config.js";
import { routes } from "./routes.js";

/** The content service, as `startService` / `runService` take it. */
export const contentService: ServiceModule<ContentConfig> = { name: "content", config: ContentConfig, routes };

export { ContentConfig };
