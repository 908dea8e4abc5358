import type { Knex } from "@promptcraft/db";
import { accessPrincipalOf, CURSOR_INTEGER, decodePageCursor, encodePageCursor, FailedPreconditionError, InvalidArgumentError, UnavailableError } from "@promptcraft/platform";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import pgvector from "pgvector";
import { EmbeddingError } from "../providers/provider.js";
import type { ModelInfo, ModelRegistry } from "../providers/registry.js";
import * as store from "../store/search.js";
import { entityNotFound, scopeOf, type Caller } from "./caller.js";
import { embeddingText, type VersionText } from "./text.js";

export type SearchMode = "semantic" | "full_text" | "hybrid";
export type SearchFilters = store.SearchFilters;

/** What the search functions need beside the caller. */
export interface SearchDeps {
  db: Knex;
  registry: ModelRegistry;
  tuning: store.AnnTuning;
}

export interface SearchInput {
  query: string;
  mode: SearchMode;
  /** Empty: the default model. */
  model: string;
  /** Weight of the semantic side in hybrid mode, 0–1. */
  semanticWeight: number;
  minScore: number;
  pageSize: number;
  pageToken: string;
  filters: SearchFilters;
}

/** One result; scores as the contract defines them (search_service.proto). */
export interface SearchHit {
  entityId: string;
  version: number;
  entityType: string;
  title: string;
  score: number;
  semanticScore?: number;
  textScore?: number;
  snippet: string;
  tags: string[];
  updateTime: Date;
}

export interface SearchOutput {
  hits: SearchHit[];
  nextPageToken: string;
  mode: SearchMode;
  /** Empty for full text. */
  model: string;
  unembeddedCount: number;
}

/** At most this many results can be paged through (the contract's limit). */
export const MAX_RESULTS = 1000;
/** Reciprocal rank fusion's constant (Cormack et al.): damps the difference between the first ranks. */
export const RRF_K = 60;
/** Candidates each side of a hybrid search contributes, at least. */
const HYBRID_MIN_DEPTH = 100;
/** unembedded_count counts up to this. */
const UNEMBEDDED_CAP = 10_000;

/**
 * Semantic score of a cosine similarity (−1..1): the similarity, negative ones as 0 (an opposed
 * direction is no match at all). `min_score` compares against this.
 */
export function semanticScore(similarity: number): number {
  return Math.max(0, Math.min(1, similarity));
}

/**
 * Weighted reciprocal rank fusion, normalised to 0–1: (k + 1) · (w / (k + rank_semantic) +
 * (1 − w) / (k + rank_text)), ranks from 1 in each side's list, a side where the entity is absent
 * adding 0. 1 means first on both sides; the first of one side alone scores its weight.
 */
export function fusedScore(semanticRank: number | undefined, textRank: number | undefined, semanticWeight: number): number {
  const side = (rank: number | undefined, weight: number) => (rank === undefined ? 0 : weight / (RRF_K + rank));
  return (RRF_K + 1) * (side(semanticRank, semanticWeight) + side(textRank, 1 - semanticWeight));
}

/** The model named (or the default); INVALID_ARGUMENT (EMBEDDING_MODEL_UNKNOWN) naming `field` if it is not configured. */
export function modelOf(registry: ModelRegistry, name: string, field = "model"): ModelInfo {
  if (name === "") return registry.defaultModel;
  const info = registry.get(name);
  if (!info) {
    throw new InvalidArgumentError(
      { field, description: `unknown embedding model ${JSON.stringify(name)}; configured: ${registry.names.join(", ")}` },
      { reason: ErrorReason.EMBEDDING_MODEL_UNKNOWN },
    );
  }
  return info;
}

/** The query must hold something to match: not only spaces, no NUL (PostgreSQL text cannot hold it). */
function checkQuery(query: string): void {
  if (query.includes("\u0000")) throw new InvalidArgumentError({ field: "query", description: "must not contain NUL characters" });
  if (query.trim() === "") throw new InvalidArgumentError({ field: "query", description: "must contain something to search for" });
}

/** The query's vector (pgvector text); UNAVAILABLE (EMBEDDING_PROVIDER_UNAVAILABLE) when the provider fails. */
async function embedQuery(info: ModelInfo, query: string, signal: AbortSignal): Promise<string> {
  try {
    const [vector] = await info.provider.embed([query], signal);
    if (!vector || vector.length !== info.provider.dimensions || !vector.every(Number.isFinite)) {
      throw new EmbeddingError(`the provider returned no valid ${info.provider.dimensions}-dimension vector`, true);
    }
    return pgvector.toSql(vector)!;
  } catch (err) {
    if (signal.aborted) throw err;
    const e = err instanceof EmbeddingError ? err : new EmbeddingError((err as Error).message, true);
    throw new UnavailableError(`the query could not be embedded with ${info.provider.model}: ${e.message}; full-text search still works`, {
      reason: ErrorReason.EMBEDDING_PROVIDER_UNAVAILABLE,
      retryAfterMs: e.retryAfterMs ?? 1000,
      metadata: { model: info.provider.model },
    });
  }
}

interface Ranked {
  entityId: string;
  version: number;
  score: number;
  semanticScore?: number;
  textScore?: number;
  /** What the result shows, when the ranking read it already (semantic mode). */
  shown?: store.SemanticHit;
}

/** A semantic hit as a result. */
function semanticResult(h: store.SemanticHit): SearchHit {
  return {
    entityId: h.entity_id,
    version: h.version,
    entityType: h.entity_type,
    title: h.title,
    score: semanticScore(h.similarity),
    semanticScore: h.similarity,
    snippet: "",
    tags: h.tags,
    updateTime: h.valid_from,
  };
}

/**
 * SearchEntities: one page of the caller's visible, filtered current versions matching `query`
 * semantically, by full text, or both (weighted reciprocal rank fusion). Paged by position (a
 * token holds the next offset, bound to the request), at most {@link MAX_RESULTS} deep. Hybrid
 * search whose query cannot be embedded (provider down) answers with the full-text side alone
 * and says so (`mode` full_text); semantic search answers UNAVAILABLE then.
 */
export async function searchEntities(deps: SearchDeps, caller: Caller, input: SearchInput): Promise<SearchOutput> {
  checkQuery(input.query);
  const { pageToken, pageSize, ...bound } = input;
  const cursor = decodePageCursor(pageToken, bound, { o: CURSOR_INTEGER });
  const offset = Math.min(Number(cursor?.o ?? 0), MAX_RESULTS);
  const size = Math.min(pageSize, MAX_RESULTS - offset);
  const principal = accessPrincipalOf(caller);
  const scope = scopeOf(caller);
  const reads = store.searchReads(deps.db, scope);
  const info = input.mode === "full_text" ? undefined : modelOf(deps.registry, input.model);
  let mode = input.mode;
  let vectorSql: string | undefined;
  if (info) {
    try {
      vectorSql = await embedQuery(info, input.query, caller.signal);
    } catch (err) {
      if (mode === "semantic") throw err;
      mode = "full_text";
    }
  }
  // Counted beside the ranking (its own round trip, in parallel): what semantic search cannot find yet.
  const unembedded = info && vectorSql ? store.unembeddedCount(reads, caller.tenantId, principal, info.provider.model, input.filters, UNEMBEDDED_CAP) : Promise.resolve(0);
  // Awaited below; a failure of the ranking must not leave it unhandled.
  unembedded.catch(() => {});
  const want = offset + size + 1;
  const semantic = (limit: number, minSimilarity: number | null) =>
    store.semanticHits(
      deps.db,
      scope,
      principal,
      { model: info!.provider.model, dimensions: info!.provider.dimensions, vectorSql: vectorSql!, filters: input.filters, minSimilarity, limit },
      deps.tuning,
    );
  let ranked: Ranked[];
  // Where this page starts in `ranked` (full text pages in SQL, the others here).
  let start = offset;
  if (size <= 0) {
    ranked = [];
  } else if (mode === "semantic") {
    const hits = await semantic(want, input.minScore > 0 ? input.minScore : null);
    ranked = hits.map((h) => ({ entityId: h.entity_id, version: h.version, score: semanticScore(h.similarity), semanticScore: h.similarity, shown: h }));
  } else if (mode === "full_text") {
    const hits = await store.textHits(reads, caller.tenantId, principal, { query: input.query, filters: input.filters, minRank: input.minScore > 0 ? input.minScore : null, limit: size + 1, offset });
    ranked = hits.map((h) => ({ entityId: h.entity_id, version: h.version, score: h.rank, textScore: h.rank }));
    start = 0;
  } else {
    const depth = Math.min(MAX_RESULTS, Math.max(HYBRID_MIN_DEPTH, want));
    const [sem, text] = await Promise.all([
      semantic(depth, null),
      store.textHits(reads, caller.tenantId, principal, { query: input.query, filters: input.filters, minRank: null, limit: depth, offset: 0 }),
    ]);
    const fused = new Map<string, { version: number; semanticRank?: number; textRank?: number; similarity?: number; rank?: number }>();
    sem.forEach((h, i) => fused.set(h.entity_id, { version: h.version, semanticRank: i + 1, similarity: h.similarity }));
    text.forEach((h, i) => fused.set(h.entity_id, { ...fused.get(h.entity_id), version: h.version, textRank: i + 1, rank: h.rank }));
    ranked = [...fused]
      .map(([entityId, f]) => ({ entityId, version: f.version, score: fusedScore(f.semanticRank, f.textRank, input.semanticWeight), semanticScore: f.similarity, textScore: f.rank }))
      .filter((r) => r.score >= input.minScore)
      .sort((a, b) => b.score - a.score || (a.entityId < b.entityId ? -1 : 1));
  }
  const page = ranked.slice(start, start + size);
  const more = ranked.length > start + size && offset + size < MAX_RESULTS;
  // Semantic results were read with their ranking; the others are read now, with snippets.
  const unread = page.filter((r) => !r.shown);
  const details = new Map((unread.length === 0 ? [] : await store.resultDetails(reads, caller.tenantId, principal, unread.map((r) => r.entityId), input.query)).map((d) => [d.entity_id, d]));
  const hits: SearchHit[] = [];
  for (const r of page) {
    if (r.shown) {
      hits.push(semanticResult(r.shown));
      continue;
    }
    const d = details.get(r.entityId);
    // Gone from view (deleted, access revoked) between the ranking and this read: left out.
    if (!d || d.version !== r.version) continue;
    hits.push({
      entityId: r.entityId,
      version: r.version,
      entityType: d.entity_type,
      title: d.title,
      score: r.score,
      semanticScore: r.semanticScore,
      textScore: r.textScore,
      snippet: r.textScore !== undefined ? d.snippet : "",
      tags: d.tags,
      updateTime: d.valid_from,
    });
  }
  const unembeddedCount = await unembedded;
  return {
    hits,
    nextPageToken: more ? encodePageCursor({ o: String(offset + size) }, bound) : "",
    mode,
    model: mode === "full_text" ? "" : info!.provider.model,
    unembeddedCount,
  };
}

export interface SimilarInput {
  entityId: string;
  version: number | null;
  types: string[];
  model: string;
  minScore: number;
  pageSize: number;
}

/**
 * FindSimilarEntities: the visible current versions nearest to the embedding of an entity's
 * version (the entity itself left out), score = semantic score. NOT_FOUND when the caller cannot
 * see the entity or it has no such version; FAILED_PRECONDITION (EMBEDDING_NOT_READY) while that
 * version has no completed embedding for the model (only current versions keep theirs).
 */
export async function findSimilarEntities(deps: SearchDeps, caller: Caller, input: SimilarInput): Promise<{ hits: SearchHit[]; model: string }> {
  const info = modelOf(deps.registry, input.model);
  const reads = store.searchReads(deps.db, scopeOf(caller));
  const source = await store.entityVector(reads, caller.tenantId, accessPrincipalOf(caller), input.entityId, input.version, info.provider.model);
  if (!source || source.permission < 1 || source.version === null) throw entityNotFound();
  if (source.vector === null) {
    throw new FailedPreconditionError(`version ${source.version} has no completed ${info.provider.model} embedding yet`, {
      reason: ErrorReason.EMBEDDING_NOT_READY,
      metadata: { model: info.provider.model, version: String(source.version) },
    });
  }
  const hits = await nearest(deps, caller, info, source.vector, { types: input.types, minSimilarity: input.minScore, limit: input.pageSize, excludeEntityId: input.entityId });
  return { model: info.provider.model, hits };
}

/** The visible current versions nearest to `vectorSql` (semantic score ≥ minSimilarity when > 0), with their details. */
async function nearest(
  deps: SearchDeps,
  caller: Caller,
  info: ModelInfo,
  vectorSql: string,
  q: { types: string[]; minSimilarity: number; limit: number; excludeEntityId?: string },
): Promise<SearchHit[]> {
  const principal = accessPrincipalOf(caller);
  const scope = scopeOf(caller);
  const filters: SearchFilters = { types: q.types, tags: [], statuses: [], labels: [], owner: null, updatedAfter: null, updatedBefore: null };
  const hits = await store.semanticHits(
    deps.db,
    scope,
    principal,
    {
      model: info.provider.model,
      dimensions: info.provider.dimensions,
      vectorSql,
      filters,
      minSimilarity: q.minSimilarity > 0 ? q.minSimilarity : null,
      limit: q.limit,
      excludeEntityId: q.excludeEntityId,
    },
    deps.tuning,
  );
  return hits.map(semanticResult);
}

/** Longest text FindNearDuplicates takes (title, description, tags and content strings together). */
export const MAX_CHECKED_CHARS = 100_000;

export interface NearDuplicateInput {
  text: VersionText;
  excludeEntityId: string | null;
  minSimilarity: number;
  model: string;
  pageSize: number;
}

/**
 * FindNearDuplicates: the visible entities whose current version's embedding is within
 * `minSimilarity` of the given text's (built as the pipeline builds a version's text).
 */
export async function findNearDuplicates(deps: SearchDeps, caller: Caller, input: NearDuplicateInput): Promise<{ hits: SearchHit[]; model: string }> {
  const info = modelOf(deps.registry, input.model);
  const full = embeddingText({ ...input.text, maxChars: MAX_CHECKED_CHARS + 1 });
  if (full.length > MAX_CHECKED_CHARS) {
    throw new InvalidArgumentError({ field: "content", description: `the text (title, description, tags and content strings) exceeds ${MAX_CHECKED_CHARS} characters` });
  }
  if (full.includes("\u0000")) throw new InvalidArgumentError({ field: "content", description: "must not contain NUL characters" });
  const vectorSql = await embedQuery(info, embeddingText(input.text), caller.signal);
  const hits = await nearest(deps, caller, info, vectorSql, {
    types: [],
    minSimilarity: input.minSimilarity,
    limit: input.pageSize,
    excludeEntityId: input.excludeEntityId ?? undefined,
  });
  return { model: info.provider.model, hits };
}
