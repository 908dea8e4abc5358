import type { ServiceModule } from "@promptcraft/platform";
import { AnalyticsConfig } from "./config.js";
import { startPartitionMaintenance } from "./domain/partitions.js";
import { routes } from "./routes.js";

/**
 * The analytics service, as `startService` / `runService` take it. It runs the scheduled partition
 * maintenance (one replica at a time, under an advisory lock).
 */
export const analyticsService: ServiceModule<AnalyticsConfig> = {
  name: "analytics",
  config: AnalyticsConfig,
  async setup({ config, db, log }) {
    const maintenance = startPartitionMaintenance(db, config.PARTITION_MAINTENANCE_INTERVAL_S * 1000, log);
    return { state: undefined, close: () => maintenance.stop() };
  },
  routes,
};

export { AnalyticsConfig };
export { PARTITION_MAINTENANCE_LOCK_KEY } from "./store/partitions.js";
