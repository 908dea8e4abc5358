import { usageReporting, type ServiceModule } from "@promptcraft/platform";
import { SearchConfig } from "./config.js";
import { startEmbeddingPipeline } from "./domain/pipeline.js";
import { embeddingUsage } from "./handlers/usage.js";
import { configuredModels, ModelRegistry } from "./providers/registry.js";
import { routes, type SearchState } from "./routes.js";

/**
 * The search service, as `startService` / `runService` take it. Beside the server it runs the
 * embedding pipeline: the event-log consumer that queues new versions, and the worker that embeds
 * them (both as the service's database role; stopped on shutdown), and its usage reporter
 * (`search` per search call, `embedding` per version embedded by a provider).
 */
export const searchService: ServiceModule<SearchConfig, SearchState> = {
  name: "search",
  config: SearchConfig,
  async setup({ config, db, log }) {
    const registry = new ModelRegistry(configuredModels(config, log));
    const usage = usageReporting(config, "search", log);
    const pipeline = startEmbeddingPipeline(
      db,
      registry,
      {
        claimBatch: config.EMBEDDING_CLAIM_BATCH,
        workers: config.EMBEDDING_WORKERS,
        maxAttempts: config.EMBEDDING_MAX_ATTEMPTS,
        retryBaseMs: config.EMBEDDING_RETRY_BASE_MS,
        leaseMs: config.EMBEDDING_LEASE_MS,
        workerIntervalMs: config.EMBEDDING_WORKER_INTERVAL_MS,
        eventPollMs: config.EMBEDDING_EVENT_POLL_MS,
        onEmbedded: embeddingUsage(usage.reporter),
      },
      log,
    );
    return {
      state: { registry, usage: usage.reporter },
      metrics: usage.metrics,
      close: async () => void (await Promise.all([pipeline.stop(), usage.close()])),
    };
  },
  routes,
};

export { SearchConfig };
export { hashEmbedding, LOCAL_DIMENSIONS, LOCAL_MODEL } from "./providers/local.js";
