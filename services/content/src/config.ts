import { serviceConfig } from "@promptcraft/platform";
import type { z } from "zod";

/** The content service's configuration (environment variables), parsed once at start. */
export const ContentConfig = serviceConfig({ grpcPort: 50052, connectPort: 51052 }, {});
export type ContentConfig = z.infer<typeof ContentConfig>;
