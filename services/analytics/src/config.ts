import { serviceConfig } from "@promptcraft/platform";
import type { z } from "zod";

/** The analytics service's configuration (environment variables), parsed once at start. */
export const AnalyticsConfig = serviceConfig({ grpcPort: 50055, connectPort: 51055 }, {});
export type AnalyticsConfig = z.infer<typeof AnalyticsConfig>;
