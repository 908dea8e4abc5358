import type { ServiceModule } from "@promptcraft/platform";
import { SearchConfig } from "./config.js";
import { startEmbeddingPipeline } from "./domain/pipeline.js";
import { localModel, ModelRegistry } from "./providers/registry.js";
import { routes } from "./routes.js";

/**
 * The search service, as `startService` / `runService` take it. Beside the server it runs the
 * embedding pipeline: the event-log consumer that queues new versions, and the worker that embeds
 * them (both as the service's database role; stopped on shutdown).
 */
export const searchService: ServiceModule<SearchConfig, ModelRegistry> = {
  name: "search",
  config: SearchConfig,
  async setup({ config, db, log }) {
    const registry = new ModelRegistry([localModel()]);
    const pipeline = startEmbeddingPipeline(
      db,
      registry,
      {
        claimBatch: config.EMBEDDING_CLAIM_BATCH,
        maxAttempts: config.EMBEDDING_MAX_ATTEMPTS,
        retryBaseMs: config.EMBEDDING_RETRY_BASE_MS,
        leaseMs: config.EMBEDDING_LEASE_MS,
        workerIntervalMs: config.EMBEDDING_WORKER_INTERVAL_MS,
        eventPollMs: config.EMBEDDING_EVENT_POLL_MS,
      },
      log,
    );
    return { state: registry, close: () => pipeline.stop() };
  },
  routes,
};

export { SearchConfig };
