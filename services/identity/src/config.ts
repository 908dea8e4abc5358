import { serviceConfig } from "@promptcraft/platform";
import type { z } from "zod";

/** The identity service's configuration (environment variables), parsed once at start. */
export const IdentityConfig = serviceConfig({ grpcPort: 50051, connectPort: 51051 }, {});
export type IdentityConfig = z.infer<typeof IdentityConfig>;
