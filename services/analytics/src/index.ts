import { peerClient, type PeerClient, type ServiceModule } from "@promptcraft/platform";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { AnalyticsConfig } from "./config.js";
import { startPartitionMaintenance } from "./domain/partitions.js";
import { startReadModelRefresh } from "./domain/read-models.js";
import { startRollupRefresher } from "./domain/summaries.js";
import { routes } from "./routes.js";

/** What analytics keeps while it runs: its client of the content service (CONTENT_URL). */
export interface AnalyticsState {
  content: PeerClient<typeof ContentService>;
}

/**
 * The analytics service, as `startService` / `runService` take it. Beside the server it runs the
 * scheduled partition maintenance and read-model refresh (each on one replica at a time, under an
 * advisory lock) and the usage rollup refresher (summaries never wait for it), and keeps a client
 * of the content service (entity statistics ask it what the caller may see).
 */
export const analyticsService: ServiceModule<AnalyticsConfig, AnalyticsState> = {
  name: "analytics",
  config: AnalyticsConfig,
  async setup({ config, db, log, tracer }) {
    const maintenance = startPartitionMaintenance(db, config.PARTITION_MAINTENANCE_INTERVAL_S * 1000, log);
    const refresher = startReadModelRefresh(db, config.READ_MODEL_REFRESH_INTERVAL_S * 1000, log);
    const rollups = startRollupRefresher(db, config.USAGE_ROLLUP_INTERVAL_MS, log);
    const content = peerClient(ContentService, config.CONTENT_URL, tracer);
    return {
      state: { content },
      close: async () => {
        await Promise.all([maintenance.stop(), refresher.stop(), rollups.stop()]);
        content.close();
      },
    };
  },
  routes,
};

export { AnalyticsConfig };
export { PARTITION_MAINTENANCE_LOCK_KEY } from "./store/partitions.js";
export { READ_MODEL_LOCK_KEY } from "./store/read-models.js";
