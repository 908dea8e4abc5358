import type { ServiceModule } from "@promptcraft/platform";
import { IdentityConfig } from "./config.js";
import { routes } from "./routes.js";

/** The identity service, as `startService` / `runService` take it. */
export const identityService: ServiceModule<IdentityConfig> = { name: "identity", config: IdentityConfig, routes };

export { IdentityConfig };
