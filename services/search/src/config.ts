import { serviceConfig } from "@promptcraft/platform";
import { z } from "zod";
import { checkEmbeddingConfig, embeddingConfigShape } from "./providers/config.js";

/**
 * The search service's configuration (environment variables), parsed once at start; the embedding
 * provider's `EMBEDDING_*` variables are docs/embedding-providers.md's.
 */
export const SearchConfig = serviceConfig(
  { grpcPort: 50054, connectPort: 51054 },
  {
    /**
     * Milliseconds between passes of the embedding worker when the queue is idle (a pass drains
     * what is due, batch after batch): the floor of "version written" to "semantically searchable".
     */
    EMBEDDING_WORKER_INTERVAL_MS: z.coerce.number().int().min(10).max(600_000).default(200),
    /** Queue items one worker claims at once (across tenants and models). */
    EMBEDDING_CLAIM_BATCH: z.coerce.number().int().min(1).max(1000).default(100),
    /**
     * Workers of this process that drain the queue side by side (each claims its own batches, as
     * replicas do). Storing a vector means inserting it into the HNSW graph, work PostgreSQL does
     * in the storing connection: more workers use more of the database's cores.
     */
    EMBEDDING_WORKERS: z.coerce.number().int().min(1).max(16).default(2),
    /** Attempts per item before it is marked `failed` with its last error (a reindex retries it). */
    EMBEDDING_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(5),
    /** First retry delay after a failed attempt; doubled per attempt, capped at 5 minutes (a provider's Retry-After wins when longer). */
    EMBEDDING_RETRY_BASE_MS: z.coerce.number().int().min(10).max(600_000).default(2000),
    /** How long a claimed item stays leased to a worker: past it, another replica takes it over (the holder died). */
    EMBEDDING_LEASE_MS: z.coerce.number().int().min(1000).max(3_600_000).default(120_000),
    /** Milliseconds between reads of the event log while idle (the consumer's short poll). */
    EMBEDDING_EVENT_POLL_MS: z.coerce.number().int().min(10).max(60_000).default(200),
    /**
     * Most index tuples one semantic query visits (pgvector `hnsw.max_scan_tuples`) while its
     * iterative scan looks for enough visible, filtered matches: bounds the time of a query whose
     * filter or threshold almost nothing meets.
     */
    SEARCH_MAX_SCAN_TUPLES: z.coerce.number().int().min(100).max(10_000_000).default(20_000),
    /** Candidate list of the HNSW search (pgvector `hnsw.ef_search`): recall against speed. */
    SEARCH_EF_SEARCH: z.coerce.number().int().min(10).max(1000).default(150),
    ...embeddingConfigShape,
  },
).superRefine(checkEmbeddingConfig);
export type SearchConfig = z.infer<typeof SearchConfig>;
