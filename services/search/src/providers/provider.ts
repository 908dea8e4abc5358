/**
 * What the embedding pipeline needs from a model provider (the built-in `local` hashing provider, or an
 * OpenAI-compatible HTTP endpoint). Workers batch texts up to `maxBatch` and store one vector per text.
 */
export interface EmbeddingProvider {
  /** The model name as registered and stored in `embedding.model`, e.g. `local-hash-384`. */
  readonly model: string;
  /** Length of every vector `embed` returns; a provider answering another length is an error. */
  readonly dimensions: number;
  /** Most texts one `embed` call accepts. */
  readonly maxBatch: number;
  /** One vector per text, in the order given. Throws `EmbeddingError` on failure. */
  embed(texts: readonly string[], signal: AbortSignal): Promise<number[][]>;
}

/**
 * A failed embedding call. `retryable` (timeouts, 429, 5xx, a broken connection) sends the job back with
 * backoff; otherwise the job fails at once. `retryAfterMs` carries a provider's `Retry-After`.
 */
export class EmbeddingError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = "EmbeddingError";
  }
}
