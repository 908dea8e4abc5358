import { serviceConfig } from "@promptcraft/platform";
import type { z } from "zod";

/** The graph service's configuration (environment variables), parsed once at start. */
export const GraphConfig = serviceConfig({ grpcPort: 50053, connectPort: 51053 }, {});
export type GraphConfig = z.infer<typeof GraphConfig>;
