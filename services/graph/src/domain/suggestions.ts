import { appendEvents, withTenant, type Knex, type Reader } from "@promptcraft/db";
import { CURSOR_UUID, decodePageCursor, FailedPreconditionError, NotFoundError, pageOf, pageSizeOf, type Actor, type CursorPattern } from "@promptcraft/platform";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import * as store from "../store/relationships.js";
import * as suggestionStore from "../store/suggestions.js";
import { EDIT, editDenied, entityNotFound, VIEW, type Caller } from "./access.js";
import { createInTransaction, readsOf, scopeOf, type RelationshipRow, type RelationshipType } from "./relationships.js";

/**
 * Suggestions (issue 12.6) from three sources: meaning — the entities search finds similar to the
 * entity (its embedding's nearest neighbours, asked on the caller's behalf) —, co-usage — the
 * entities analytics saw used in the same requests (asked the same way) — and structure — shared
 * tags and title words. A pair is suggested once, scored by its best source, its reason naming
 * every source. Suggestions are the tenant's (not per user) and, like everything in graph, exist
 * for a caller only when the caller may view both entities.
 */

export type SuggestionRow = suggestionStore.SuggestionRow;
export type SuggestionKind = suggestionStore.SuggestionKind;

/** Candidates scored per generation (the best of those sharing tags or title words). */
const CANDIDATE_LIMIT = 500;
/** Similar entities asked of search per generation (some may be related or decided already). */
export const SIMILAR_LIMIT = 50;
/** Title words shorter than this are noise ("a", "of"). */
const MIN_WORD_LENGTH = 3;

/** Entities similar in meaning to one, as search found them (score: max(0, cosine similarity), 0–1). */
export interface SimilarEntities {
  matches: { entityId: string; score: number }[];
  model: string;
}

/**
 * Asks search for the entities most similar to `entityId` (at least `minScore`, at most `limit`) on
 * the caller's behalf; `{ unavailable }` says why it could not answer (down, slow, not embedded yet).
 */
export type FindSimilar = (entityId: string, minScore: number, limit: number) => Promise<SimilarEntities | { unavailable: string }>;

/** Entities used in the same requests as one, as analytics counted them over its window. */
export interface CoUsedEntities {
  /** Requests that used the entity (the denominator of each share). */
  requestCount: number;
  matches: { entityId: string; sharedRequests: number }[];
  days: number;
}

/**
 * Asks analytics for the entities most often used in the same requests as `entityId` (at most
 * `limit`) on the caller's behalf; `{ unavailable }` says why it could not answer.
 */
export type FindCoUsed = (entityId: string, limit: number) => Promise<CoUsedEntities | { unavailable: string }>;

/** Co-used entities asked of analytics per generation. */
export const CO_USED_LIMIT = 50;
/** Fewer shared requests than this is coincidence, not co-usage. */
export const MIN_SHARED_REQUESTS = 2;

function titleWords(title: string): string[] {
  return [...new Set(title.toLowerCase().split(/[^\p{L}\p{N}]+/u).filter((w) => w.length >= MIN_WORD_LENGTH))];
}

function jaccard(a: readonly string[], b: readonly string[]): { score: number; shared: string[] } {
  const setB = new Set(b);
  const shared = [...new Set(a)].filter((x) => setB.has(x));
  const union = new Set([...a, ...b]).size;
  return { score: union === 0 ? 0 : shared.length / union, shared };
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;

/** How alike two entities are by structure: tags weigh 0.7, title words 0.3 (Jaccard each), with what they share in words. */
export function structureScore(entity: { title: string; tags: string[] }, other: { title: string; tags: string[] }): { score: number; reason: string } {
  const tags = jaccard(entity.tags, other.tags);
  const words = jaccard(titleWords(entity.title), titleWords(other.title));
  const parts: string[] = [];
  if (tags.shared.length > 0) parts.push(`shares tags: ${tags.shared.join(", ")}`);
  if (words.shared.length > 0) parts.push(`title words in common: ${words.shared.join(", ")}`);
  return { score: round3(0.7 * tags.score + 0.3 * words.score), reason: parts.join("; ") };
}

/** A candidate's merged suggestion: the best source's score, every source that found it, one reason naming them. */
export interface MergedSuggestion {
  suggestedEntityId: string;
  score: number;
  kind: SuggestionKind;
  sources: SuggestionKind[];
  reason: string;
}

/** What the asked sources said of one candidate, and why those that could not answer did not. */
export interface SourceFindings {
  /** Search's score (undefined: search did not return the candidate). */
  semantic?: { score: number; model: string };
  /** Analytics' count (undefined: not co-used, or too seldom). */
  coUsage?: { sharedRequests: number; requestCount: number; days: number };
  semanticUnavailable?: string;
  coUsageUnavailable?: string;
}

/**
 * Merges what the sources say of one candidate: meaning scores search's similarity, co-usage the
 * share of the entity's requests that used the candidate too (at least {@link MIN_SHARED_REQUESTS}),
 * structure its tags and title words. A source that could not be asked is said in the reason.
 */
export function mergeSources(candidate: { id: string; title: string; tags: string[] }, self: { title: string; tags: string[] }, findings: SourceFindings): MergedSuggestion {
  const { semantic, coUsage } = findings;
  const structure = structureScore(self, candidate);
  const found: { kind: SuggestionKind; score: number; reason: string }[] = [];
  if (semantic) found.push({ kind: "similar", score: round3(semantic.score), reason: `${Math.round(semantic.score * 100)}% similar in meaning (embeddings, ${semantic.model})` });
  if (coUsage && coUsage.sharedRequests >= MIN_SHARED_REQUESTS && coUsage.requestCount > 0) {
    found.push({
      kind: "co_used",
      score: round3(Math.min(1, coUsage.sharedRequests / coUsage.requestCount)),
      reason: `used together in ${coUsage.sharedRequests} of its ${coUsage.requestCount} requests (last ${coUsage.days} days)`,
    });
  }
  if (structure.score > 0) found.push({ kind: "dependency", score: structure.score, reason: structure.reason });
  const best = found.reduce((a, b) => (b.score > a.score ? b : a), found[0] ?? { kind: "dependency" as const, score: 0, reason: "" });
  const missing = [
    findings.semanticUnavailable === undefined ? undefined : `semantic similarity unavailable: ${findings.semanticUnavailable}`,
    findings.coUsageUnavailable === undefined ? undefined : `co-usage unavailable: ${findings.coUsageUnavailable}`,
  ].filter((m) => m !== undefined);
  const note = missing.length === 0 ? "" : ` (${missing.join("; ")})`;
  return {
    suggestedEntityId: candidate.id,
    score: best.score,
    kind: best.kind,
    sources: found.map((f) => f.kind),
    reason: `${found.map((f) => f.reason).join("; ")}${note}`,
  };
}

/** What GenerateSuggestions made, and whether semantic similarity and co-usage could be consulted. */
export interface GeneratedSuggestions {
  suggestions: SuggestionRow[];
  /** Why search could not be asked; undefined when it answered. */
  semanticUnavailable: string | undefined;
  /** Why analytics could not be asked; undefined when it answered. */
  coUsageUnavailable: string | undefined;
}

/**
 * GenerateSuggestions: asks search for the entities similar in meaning and analytics for those used
 * in the same requests, side by side (edit on the entity needed first, so neither is asked for
 * nothing), then scores those and the entities sharing tags or title words, keeps those of at least
 * `minScore`, best `max` first, stores them as pending and returns them. Pairs already related
 * (either direction) or decided, and entities the caller may not view (search and analytics filter
 * them too; graph checks again), are skipped. Search or analytics failing is not an error: the
 * suggestions come from the other sources and say so.
 */
export async function generateSuggestions(
  db: Knex,
  caller: Caller,
  q: { entityId: string; max: number; minScore: number },
  sources: { findSimilar: FindSimilar; findCoUsed: FindCoUsed },
): Promise<GeneratedSuggestions> {
  await checkEditable(readsOf(db, caller), caller, q.entityId);
  const [similar, coUsed] = await Promise.all([sources.findSimilar(q.entityId, q.minScore, SIMILAR_LIMIT), sources.findCoUsed(q.entityId, CO_USED_LIMIT)]);
  const semanticUnavailable = "unavailable" in similar ? similar.unavailable : undefined;
  const coUsageUnavailable = "unavailable" in coUsed ? coUsed.unavailable : undefined;
  const semantic = new Map("unavailable" in similar ? [] : similar.matches.filter((m) => m.entityId !== q.entityId).map((m) => [m.entityId, { score: m.score, model: similar.model }] as const));
  const coUsage = new Map(
    "unavailable" in coUsed
      ? []
      : coUsed.matches
          .filter((m) => m.entityId !== q.entityId && m.sharedRequests >= MIN_SHARED_REQUESTS)
          .map((m) => [m.entityId, { sharedRequests: m.sharedRequests, requestCount: coUsed.requestCount, days: coUsed.days }] as const),
  );
  const suggestions = await withTenant(db, scopeOf(caller), async (trx) => {
    const entity = await checkEditable(trx, caller, q.entityId);
    const { rows } = await trx.raw<{ rows: { tags: string[] }[] }>("select tags from entity_version where tenant_id = ? and entity_id = ? and valid_to is null", [caller.tenantId, q.entityId]);
    const self = { title: entity.title, tags: rows[0]?.tags ?? [] };
    const structural = await suggestionStore.findCandidates(trx, caller, q.entityId, self.tags, titleWords(self.title), CANDIDATE_LIMIT);
    const known = new Set(structural.map((c) => c.id));
    const others = [...new Set([...semantic.keys(), ...coUsage.keys()])].filter((id) => !known.has(id));
    const foundElsewhere = await suggestionStore.findCandidatesByIds(trx, caller, q.entityId, others);
    const scored = [...structural, ...foundElsewhere]
      .map((c) => mergeSources(c, self, { semantic: semantic.get(c.id), coUsage: coUsage.get(c.id), semanticUnavailable, coUsageUnavailable }))
      .filter((c) => c.score >= q.minScore && c.score > 0)
      .sort((a, b) => b.score - a.score || a.suggestedEntityId.localeCompare(b.suggestedEntityId))
      .slice(0, q.max);
    const ids = await suggestionStore.upsertPending(trx, caller.tenantId, q.entityId, scored);
    return suggestionStore.findSuggestions(trx, caller, ids);
  });
  return { suggestions, semanticUnavailable, coUsageUnavailable };
}

/** The entity suggestions are generated for: NOT_FOUND unless visible, PERMISSION_DENIED without edit. */
async function checkEditable(reader: Reader, caller: Caller, entityId: string): Promise<{ title: string }> {
  const entity = (await store.findEntities(reader, caller, [entityId])).get(entityId);
  if (!entity || entity.permission < VIEW) throw entityNotFound("entity_id");
  if (entity.permission < EDIT) throw editDenied();
  return entity;
}

const CURSOR_SCORE: CursorPattern = { test: (v) => v !== "" && Number.isFinite(Number(v)) };

/** ListSuggestions: for one entity (view needed) or the whole tenant, by descending score, paged. */
export async function listSuggestions(
  db: Knex,
  caller: Caller,
  q: { entityId: string; statuses: suggestionStore.SuggestionStatus[]; minScore: number; pageSize: number; pageToken: string },
): Promise<{ suggestions: SuggestionRow[]; nextPageToken: string }> {
  const params = { e: q.entityId, s: [...q.statuses].sort(), m: q.minScore };
  const cursor = decodePageCursor(q.pageToken, params, { s: CURSOR_SCORE, i: CURSOR_UUID });
  const reads = readsOf(db, caller);
  if (q.entityId !== "") {
    const entity = (await store.findEntities(reads, caller, [q.entityId])).get(q.entityId);
    if (!entity || entity.permission < VIEW) throw entityNotFound("entity_id");
  }
  const limit = pageSizeOf(q.pageSize);
  const rows = await suggestionStore.listSuggestions(reads, caller, {
    entityId: q.entityId || undefined,
    statuses: q.statuses.length > 0 ? q.statuses : ["open"],
    minScore: q.minScore,
    after: cursor ? { score: cursor.s, id: cursor.i } : undefined,
    limit: limit + 1,
  });
  const { page, nextPageToken } = pageOf(rows, limit, params, (last) => ({ s: String(last.score), i: last.id }));
  return { suggestions: page, nextPageToken };
}

/** The suggestion locked for a decision: NOT_FOUND unless both entities are visible; edit on its entity; still pending. */
async function lockPending(trx: Knex.Transaction, caller: Caller, id: string): Promise<SuggestionRow> {
  const found = (await suggestionStore.findSuggestions(trx, caller, [id], true))[0];
  if (!found) throw new NotFoundError("suggestion not found", { metadata: { resource_type: "suggestion" } });
  if ((found.source_permission ?? 0) < EDIT) throw editDenied();
  if (found.status !== "open") {
    throw new FailedPreconditionError(`the suggestion was already ${found.status}`, {
      reason: ErrorReason.SUGGESTION_RESOLVED,
      metadata: { state: found.status === "accepted" ? "SUGGESTION_STATE_ACCEPTED" : "SUGGESTION_STATE_DISMISSED" },
    });
  }
  return found;
}

/**
 * AcceptSuggestion: creates the relationship (the suggestion's type unless overridden, strength =
 * the score unless given; every rule of CreateRelationship applies: cycles, limits, access) and
 * marks the suggestion accepted, in one transaction.
 */
export async function acceptSuggestion(
  db: Knex,
  caller: Caller,
  q: { id: string; type?: RelationshipType; strength?: number },
  actor: Actor,
): Promise<{ suggestion: SuggestionRow; relationship: RelationshipRow }> {
  return withTenant(db, scopeOf(caller), async (trx) => {
    const pending = await lockPending(trx, caller, q.id);
    const relationship = await createInTransaction(
      trx,
      caller,
      {
        sourceId: pending.entity_id,
        targetId: pending.suggested_entity_id,
        type: q.type ?? pending.relationship_type,
        strength: q.strength ?? pending.score,
        metadata: { suggestion_id: pending.id },
        pin: { version: null, label: null },
        requestId: "",
      },
      actor,
    );
    await suggestionStore.decide(trx, caller.tenantId, pending.id, { status: "accepted", relationshipId: relationship.id, by: caller.userId ?? null });
    await appendEvents(trx, [
      { tenantId: caller.tenantId, aggregateType: "suggestion", aggregateId: pending.id, eventType: "graph.suggestion.accepted", payload: { relationship_id: relationship.id }, ...actor },
    ]);
    const suggestion = (await suggestionStore.findSuggestions(trx, caller, [pending.id]))[0]!;
    return { suggestion, relationship };
  });
}

/** DismissSuggestion: marks it dismissed (the pair is not suggested again), with the reason. */
export async function dismissSuggestion(db: Knex, caller: Caller, q: { id: string; reason: string }, actor: Actor): Promise<SuggestionRow> {
  return withTenant(db, scopeOf(caller), async (trx) => {
    const pending = await lockPending(trx, caller, q.id);
    await suggestionStore.decide(trx, caller.tenantId, pending.id, { status: "dismissed", reason: q.reason, by: caller.userId ?? null });
    await appendEvents(trx, [{ tenantId: caller.tenantId, aggregateType: "suggestion", aggregateId: pending.id, eventType: "graph.suggestion.dismissed", payload: { reason: q.reason }, ...actor }]);
    return (await suggestionStore.findSuggestions(trx, caller, [pending.id]))[0]!;
  });
}
