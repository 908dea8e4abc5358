import { serviceConfig } from "@promptcraft/platform";
import type { z } from "zod";

/** The search service's configuration (environment variables), parsed once at start. */
export const SearchConfig = serviceConfig({ grpcPort: 50054, connectPort: 51054 }, {});
export type SearchConfig = z.infer<typeof SearchConfig>;
