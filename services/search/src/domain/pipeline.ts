import { randomUUID } from "node:crypto";
import { withServiceRole, withTenant, type Knex } from "@promptcraft/db";
import { runEventConsumer, startIntervalJob, type IntervalJob, type LogEvent, type Logger } from "@promptcraft/platform";
import pgvector from "pgvector";
import { EmbeddingError } from "../providers/provider.js";
import type { ModelRegistry } from "../providers/registry.js";
import * as queue from "../store/queue.js";
import { recordOutcomes, type OutcomeCounts } from "../store/reindex.js";
import { embeddingText, textHash } from "./text.js";

/** Name of the event-log consumer that feeds the queue (its checkpoint and lease in `event_consumer`). */
export const EMBEDDING_CONSUMER = "search.embeddings";

/** Content events after which an entity's current version may need embedding. */
const EMBED_EVENTS = new Set(["content.entity.created", "content.entity.updated", "content.entity.rolled_back", "content.entity.undeleted"]);
/** Content events after which nothing of an entity is to be embedded. */
const DROP_EVENTS = new Set(["content.entity.deleted", "content.entity.purged"]);

/**
 * The log handler: per tenant, queues the current version of every entity created, changed, rolled
 * back or undeleted (for every model), and drops the queued items of entities deleted or purged.
 * Events are folded per entity in log order, so the last one decides. Idempotent (at-least-once
 * delivery): queueing skips what is queued or embedded already.
 */
export async function handleContentEvents(db: Knex, models: readonly string[], events: readonly LogEvent[], signal: AbortSignal): Promise<void> {
  const byTenant = new Map<string, Map<string, "embed" | "drop">>();
  for (const e of events) {
    if (e.aggregateType !== "entity" || e.aggregateId === null) continue;
    const action = EMBED_EVENTS.has(e.eventType) ? "embed" : DROP_EVENTS.has(e.eventType) ? "drop" : undefined;
    if (!action) continue;
    let entities = byTenant.get(e.tenantId);
    if (!entities) byTenant.set(e.tenantId, (entities = new Map<string, "embed" | "drop">()));
    entities.set(e.aggregateId, action);
  }
  for (const [tenantId, entities] of byTenant) {
    const embed = [...entities].filter(([, a]) => a === "embed").map(([id]) => id);
    const drop = [...entities].filter(([, a]) => a === "drop").map(([id]) => id);
    await withTenant(db, { service: "search", tenantId, signal }, async (trx) => {
      if (drop.length > 0) await queue.dropQueuedItems(trx, tenantId, drop);
      if (embed.length > 0) await queue.enqueueCurrentVersions(trx, tenantId, embed, models);
    });
  }
}

/** What the start-up scan found and queued: versions per model, and the tenants they belong to. */
export interface MissingQueued {
  tenants: number;
  queued: number;
  byModel: Record<string, number>;
}

/**
 * A model change triggers a reindex: finds, across tenants, the current versions that a model of
 * `models` has never seen (a model newly configured, or one that was off while they were written)
 * and queues them, tenant by tenant, for the worker. One indexed anti-join when nothing is missing;
 * idempotent across replicas and restarts (the queue's unique key drops repeats). Logs the counts.
 */
export async function queueMissingEmbeddings(db: Knex, models: readonly string[], signal: AbortSignal, log: Logger): Promise<MissingQueued> {
  const missing = await withServiceRole(db, "search", (trx) => queue.findMissingEmbeddings(trx, models), { signal });
  const modelsByTenant = new Map<string, string[]>();
  for (const m of missing) modelsByTenant.set(m.tenant_id, [...(modelsByTenant.get(m.tenant_id) ?? []), m.model]);
  let queued = 0;
  for (const [tenantId, tenantModels] of modelsByTenant) {
    queued += await withTenant(db, { service: "search", tenantId, signal }, (trx) => queue.enqueueMissingVersions(trx, tenantId, tenantModels));
  }
  const byModel: Record<string, number> = {};
  for (const m of missing) byModel[m.model] = (byModel[m.model] ?? 0) + m.missing;
  const result = { tenants: modelsByTenant.size, queued, byModel };
  if (missing.length > 0) log.info(result, "queued current versions that a configured model has not embedded");
  else log.debug({ models }, "every current version is embedded or queued for every configured model");
  return result;
}

/** One version the provider embedded (for usage reporting; copies of unchanged text are not reported). */
export interface EmbeddedItem {
  tenantId: string;
  entityId: string;
  version: number;
  model: string;
  /** Time of the provider call that embedded it (its whole batch). */
  latencyMs: number;
}

/** Tuning of the worker (config), and who hears of each embedded version. */
export interface WorkerOptions {
  claimBatch: number;
  maxAttempts: number;
  retryBaseMs: number;
  leaseMs: number;
  onEmbedded?: (item: EmbeddedItem) => void;
}

const MAX_RETRY_DELAY_MS = 5 * 60_000;

/** Delay before attempt `attempts + 1`: base · 2^(attempts − 1), capped; a provider's Retry-After when longer. */
export function retryDelayMs(attempts: number, baseMs: number, retryAfterMs?: number): number {
  const backoff = Math.min(MAX_RETRY_DELAY_MS, baseMs * 2 ** Math.max(0, attempts - 1));
  return Math.max(backoff, Math.min(retryAfterMs ?? 0, MAX_RETRY_DELAY_MS));
}

/**
 * One pass of the embedding worker: claims due items of every tenant in batches (leased to this
 * worker: replicas share the queue, never an item), embeds them and stores the vectors, until the
 * queue has nothing due. Per item:
 * - stale (version superseded, entity deleted or purged since queued): dropped, never embedded;
 * - text hash already embedded with this model in the tenant (and not forced): the vector is
 *   copied, no provider call (`skipped`);
 * - otherwise embedded by the model's provider, in batches of its `maxBatch`. A failure is retried
 *   with exponential backoff up to `maxAttempts`, then the embedding is `failed` with the error; a
 *   permanent failure (not retryable) fails at once. Each model's batch fails alone: one broken
 *   provider never holds up another model's items.
 * Only items of the models this process serves are claimed. An item whose worker died is taken
 * over when its lease expires (jobs survive restarts).
 */
export async function runWorkerPass(db: Knex, registry: ModelRegistry, worker: string, options: WorkerOptions, signal: AbortSignal, log: Logger): Promise<number> {
  let handled = 0;
  while (!signal.aborted) {
    const claimed = await withServiceRole(db, "search", (trx) => queue.claimItems(trx, worker, registry.names, options.claimBatch, options.leaseMs), { signal });
    if (claimed.length === 0) break;
    const byTenant = new Map<string, string[]>();
    for (const c of claimed) byTenant.set(c.tenant_id, [...(byTenant.get(c.tenant_id) ?? []), c.id]);
    for (const [tenantId, ids] of byTenant) {
      await embedTenantItems(db, registry, tenantId, ids, worker, options, signal, log);
    }
    handled += claimed.length;
    if (claimed.length < options.claimBatch) break;
  }
  return handled;
}

interface Prepared {
  item: queue.ItemToEmbed;
  text: string;
  hash: string;
}

async function embedTenantItems(
  db: Knex,
  registry: ModelRegistry,
  tenantId: string,
  ids: string[],
  worker: string,
  options: WorkerOptions,
  signal: AbortSignal,
  log: Logger,
): Promise<void> {
  const scope = { service: "search" as const, tenantId, signal };
  const outcomes = new Map<string, OutcomeCounts>();
  const count = (item: queue.ItemToEmbed, outcome: queue.ItemOutcome) => {
    if (!item.reindex_id) return;
    const c = outcomes.get(item.reindex_id) ?? { completed: 0, skipped: 0, failed: 0 };
    c[outcome] += 1;
    outcomes.set(item.reindex_id, c);
  };
  // Stale items go, unchanged text is copied; what is left needs the provider.
  const toEmbed = await withTenant(db, scope, async (trx) => {
    const items = await queue.itemsToEmbed(trx, tenantId, ids, worker);
    const stale = items.filter((i) => !i.current);
    await queue.deleteItems(trx, tenantId, stale.map((i) => i.id));
    for (const item of stale) count(item, "skipped");
    const prepared: Prepared[] = items
      .filter((i) => i.current)
      .map((item) => {
        const text = embeddingText({ title: item.title ?? "", description: item.description ?? "", tags: item.tags ?? [], content: item.content });
        return { item, text, hash: textHash(text) };
      });
    const copied = await queue.copyEmbeddedVectors(
      trx,
      tenantId,
      prepared.filter((p) => !p.item.force).map((p) => ({ item: p.item, contentHash: p.hash })),
    );
    for (const p of prepared) if (copied.has(p.item.id)) count(p.item, "skipped");
    return prepared.filter((p) => !copied.has(p.item.id));
  });
  const byModel = new Map<string, Prepared[]>();
  for (const p of toEmbed) byModel.set(p.item.model, [...(byModel.get(p.item.model) ?? []), p]);
  for (const [model, prepared] of byModel) {
    const info = registry.get(model);
    const maxBatch = info?.provider.maxBatch ?? prepared.length;
    for (let i = 0; i < prepared.length; i += maxBatch) {
      const batch = prepared.slice(i, i + maxBatch);
      let vectors: number[][] | undefined;
      let failure: { message: string; retryable: boolean; retryAfterMs?: number } | undefined;
      const started = performance.now();
      try {
        if (!info) throw new EmbeddingError(`embedding model ${model} is not configured on this search service`, false);
        vectors = await info.provider.embed(batch.map((p) => p.text), signal);
        checkVectors(vectors, batch.length, info.provider.dimensions);
      } catch (err) {
        if (signal.aborted) throw err;
        vectors = undefined;
        failure = err instanceof EmbeddingError ? { message: err.message, retryable: err.retryable, retryAfterMs: err.retryAfterMs } : { message: (err as Error).message, retryable: true };
        log.warn({ model, items: batch.length, err: failure.message }, "embedding failed");
      }
      const latencyMs = performance.now() - started;
      await withTenant(db, scope, async (trx) => {
        if (vectors) {
          const embedded = vectors;
          await queue.storeVectors(trx, tenantId, batch.map((p, k) => ({ item: p.item, contentHash: p.hash, vectorSql: pgvector.toSql(embedded[k]!)! })));
          for (const p of batch) {
            count(p.item, "completed");
            options.onEmbedded?.({ tenantId, entityId: p.item.entity_id, version: p.item.version, model, latencyMs });
          }
          return;
        }
        for (const p of batch) {
          if (failure!.retryable && p.item.attempts < options.maxAttempts) {
            await queue.retryLater(trx, tenantId, p.item, p.hash, failure!.message, retryDelayMs(p.item.attempts, options.retryBaseMs, failure!.retryAfterMs));
          } else {
            await queue.giveUp(trx, tenantId, p.item, p.hash, failure!.message);
            count(p.item, "failed");
          }
        }
      });
    }
  }
  if (outcomes.size > 0) {
    await withTenant(db, scope, async (trx) => {
      for (const [reindexId, counts] of outcomes) await recordOutcomes(trx, tenantId, reindexId, counts);
    });
  }
}

/** A provider's answer must be one finite vector of the model's size per text. */
function checkVectors(vectors: number[][], expected: number, dimensions: number): void {
  if (vectors.length !== expected) throw new EmbeddingError(`provider returned ${vectors.length} vectors for ${expected} texts`, true);
  for (const v of vectors) {
    if (v.length !== dimensions) throw new EmbeddingError(`provider returned a vector of ${v.length} dimensions, the model has ${dimensions}`, false);
    if (!v.every(Number.isFinite)) throw new EmbeddingError("provider returned a vector with a non-finite value", true);
  }
}

/** The running pipeline: the log consumer and the worker. */
export interface EmbeddingPipeline {
  stop(): Promise<void>;
}

/**
 * Starts the pipeline beside the server, as the search service's role (background work, no user):
 * the durable log consumer (one active replica, the others standing by) and `workers` workers on
 * the platform's interval job (every replica works; the queue's leases keep them apart), whose first
 * pass queues the current versions a configured model has not embedded (queueMissingEmbeddings).
 */
export function startEmbeddingPipeline(
  db: Knex,
  registry: ModelRegistry,
  options: WorkerOptions & { workers: number; workerIntervalMs: number; eventPollMs: number },
  log: Logger,
): EmbeddingPipeline {
  const stopping = new AbortController();
  const consumer = runEventConsumer({
    db,
    service: "search",
    name: EMBEDDING_CONSUMER,
    pollIntervalMs: options.eventPollMs,
    signal: stopping.signal,
    log,
    handle: (events, signal) => handleContentEvents(db, registry.names, events, signal),
  });
  const worker = `search-${randomUUID()}`;
  // The first pass (and each after it until one succeeds) queues what a configured model has not
  // seen yet: a model change reindexes without anyone asking, and start-up never waits for it.
  let missingQueued = false;
  const pass = async (signal: AbortSignal) => {
    if (!missingQueued) {
      await queueMissingEmbeddings(db, registry.names, signal, log);
      missingQueued = true;
    }
    // Workers side by side, each claiming its own batches (SKIP LOCKED keeps them apart). The pass
    // ends when all have ended (a failing one must not leave the others running past stop()).
    const passes = await Promise.allSettled(Array.from({ length: options.workers }, () => runWorkerPass(db, registry, worker, options, signal, log)));
    const failed = passes.find((p) => p.status === "rejected");
    if (failed) throw failed.reason;
    return passes.reduce((sum, p) => sum + (p.status === "fulfilled" ? p.value : 0), 0);
  };
  const job: IntervalJob = startIntervalJob("embedding worker", options.workerIntervalMs, pass, log, { atStart: true });
  return {
    async stop() {
      stopping.abort(new Error("embedding pipeline stopped"));
      await Promise.all([consumer, job.stop()]);
    },
  };
}
