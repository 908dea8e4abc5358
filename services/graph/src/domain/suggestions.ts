import { appendEvents, withTenant, type Knex, type Reader } from "@promptcraft/db";
import { CURSOR_UUID, decodePageCursor, FailedPreconditionError, NotFoundError, pageOf, pageSizeOf, type Actor, type CursorPattern } from "@promptcraft/platform";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import * as store from "../store/relationships.js";
import * as suggestionStore from "../store/suggestions.js";
import { EDIT, editDenied, entityNotFound, VIEW, type Caller } from "./access.js";
import { createInTransaction, readsOf, scopeOf, type RelationshipRow, type RelationshipType } from "./relationships.js";

/**
 * Suggestions (issue 12.6) from two sources: meaning — the entities search finds similar to the
 * entity (its embedding's nearest neighbours, asked on the caller's behalf) — and structure — shared
 * tags and title words. Co-usage (analytics) is not used yet. A pair is suggested once, scored by its
 * best source, its reason naming every source. Suggestions are the tenant's (not per user) and,
 * like everything in graph, exist for a caller only when the caller may view both entities.
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

/**
 * Merges what the sources say of one candidate. `semantic` is search's score (undefined: search
 * did not return it); `semanticUnavailable` is why search could not be asked, said in the reason.
 */
export function mergeSources(
  candidate: { id: string; title: string; tags: string[] },
  self: { title: string; tags: string[] },
  semantic: { score: number; model: string } | undefined,
  semanticUnavailable: string | undefined,
): MergedSuggestion {
  const structure = structureScore(self, candidate);
  const found: { kind: SuggestionKind; score: number; reason: string }[] = [];
  if (semantic) found.push({ kind: "similar", score: round3(semantic.score), reason: `${Math.round(semantic.score * 100)}% similar in meaning (embeddings, ${semantic.model})` });
  if (structure.score > 0) found.push({ kind: "dependency", score: structure.score, reason: structure.reason });
  const best = found.reduce((a, b) => (b.score > a.score ? b : a), found[0] ?? { kind: "dependency" as const, score: 0, reason: "" });
  const note = semanticUnavailable === undefined ? "" : ` (semantic similarity unavailable: ${semanticUnavailable}; from tags and titles only)`;
  return {
    suggestedEntityId: candidate.id,
    score: best.score,
    kind: best.kind,
    sources: found.map((f) => f.kind),
    reason: `${found.map((f) => f.reason).join("; ")}${note}`,
  };
}

/** What GenerateSuggestions made, and whether semantic similarity could be consulted. */
export interface GeneratedSuggestions {
  suggestions: SuggestionRow[];
  /** Why search could not be asked; undefined when it answered. */
  semanticUnavailable: string | undefined;
}

/**
 * GenerateSuggestions: asks search for the entities similar in meaning (edit on the entity needed
 * first, so search is not asked for nothing), then scores those and the entities sharing tags or
 * title words, keeps those of at least `minScore`, best `max` first, stores them as pending and
 * returns them. Pairs already related (either direction) or decided, and entities the caller may
 * not view (search filters them too; graph checks again), are skipped. Search failing is not an
 * error: the suggestions come from structure alone and say so.
 */
export async function generateSuggestions(db: Knex, caller: Caller, q: { entityId: string; max: number; minScore: number }, findSimilar: FindSimilar): Promise<GeneratedSuggestions> {
  await checkEditable(readsOf(db, caller), caller, q.entityId);
  const similar = await findSimilar(q.entityId, q.minScore, SIMILAR_LIMIT);
  const semanticUnavailable = "unavailable" in similar ? similar.unavailable : undefined;
  const semantic = new Map("unavailable" in similar ? [] : similar.matches.filter((m) => m.entityId !== q.entityId).map((m) => [m.entityId, { score: m.score, model: similar.model }] as const));
  const suggestions = await withTenant(db, scopeOf(caller), async (trx) => {
    const entity = await checkEditable(trx, caller, q.entityId);
    const { rows } = await trx.raw<{ rows: { tags: string[] }[] }>("select tags from entity_version where tenant_id = ? and entity_id = ? and valid_to is null", [caller.tenantId, q.entityId]);
    const self = { title: entity.title, tags: rows[0]?.tags ?? [] };
    const structural = await suggestionStore.findCandidates(trx, caller, q.entityId, self.tags, titleWords(self.title), CANDIDATE_LIMIT);
    const known = new Set(structural.map((c) => c.id));
    const similarOnly = await suggestionStore.findCandidatesByIds(trx, caller, q.entityId, [...semantic.keys()].filter((id) => !known.has(id)));
    const scored = [...structural, ...similarOnly]
      .map((c) => mergeSources(c, self, semantic.get(c.id), semanticUnavailable))
      .filter((c) => c.score >= q.minScore && c.score > 0)
      .sort((a, b) => b.score - a.score || a.suggestedEntityId.localeCompare(b.suggestedEntityId))
      .slice(0, q.max);
    const ids = await suggestionStore.upsertPending(trx, caller.tenantId, q.entityId, scored);
    return suggestionStore.findSuggestions(trx, caller, ids);
  });
  return { suggestions, semanticUnavailable };
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
