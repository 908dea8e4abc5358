import { appendEvents, withTenant, type Knex } from "@promptcraft/db";
import { CURSOR_UUID, decodePageCursor, FailedPreconditionError, NotFoundError, pageOf, pageSizeOf, type Actor, type CursorPattern } from "@promptcraft/platform";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import * as store from "../store/relationships.js";
import * as suggestionStore from "../store/suggestions.js";
import { EDIT, editDenied, entityNotFound, VIEW, type Caller } from "./access.js";
import { createInTransaction, readsOf, scopeOf, type RelationshipRow, type RelationshipType } from "./relationships.js";

/**
 * Suggestions (issue 12.6). Generated from structure — shared tags and title words — because the
 * search service (embedding similarity) and analytics' co-usage are not reachable from graph yet;
 * each suggestion's reason says what it rests on. Suggestions are the tenant's (not per user) and,
 * like everything in graph, exist for a caller only when the caller may view both entities.
 */

export type SuggestionRow = suggestionStore.SuggestionRow;

/** Candidates scored per generation (the best of those sharing tags or title words). */
const CANDIDATE_LIMIT = 500;
/** Title words shorter than this are noise ("a", "of"). */
const MIN_WORD_LENGTH = 3;

function titleWords(title: string): string[] {
  return [...new Set(title.toLowerCase().split(/[^\p{L}\p{N}]+/u).filter((w) => w.length >= MIN_WORD_LENGTH))];
}

function jaccard(a: readonly string[], b: readonly string[]): { score: number; shared: string[] } {
  const setB = new Set(b);
  const shared = [...new Set(a)].filter((x) => setB.has(x));
  const union = new Set([...a, ...b]).size;
  return { score: union === 0 ? 0 : shared.length / union, shared };
}

/** How alike two entities are by structure: tags weigh 0.7, title words 0.3 (Jaccard each), with the reason in words. */
export function structureScore(entity: { title: string; tags: string[] }, other: { title: string; tags: string[] }): { score: number; reason: string } {
  const tags = jaccard(entity.tags, other.tags);
  const words = jaccard(titleWords(entity.title), titleWords(other.title));
  const score = Math.round((0.7 * tags.score + 0.3 * words.score) * 1000) / 1000;
  const parts: string[] = [];
  if (tags.shared.length > 0) parts.push(`shares tags: ${tags.shared.join(", ")}`);
  if (words.shared.length > 0) parts.push(`title words in common: ${words.shared.join(", ")}`);
  return { score, reason: `${parts.join("; ")} (structure: tags and titles; embedding similarity and co-usage are not used yet)` };
}

/**
 * GenerateSuggestions: scores the entities that share tags or title words with the entity (edit on
 * it needed), keeps those of at least `minScore`, best `max` first, stores them as pending and
 * returns them. Pairs already related (either direction) or decided are skipped.
 */
export async function generateSuggestions(db: Knex, caller: Caller, q: { entityId: string; max: number; minScore: number }): Promise<SuggestionRow[]> {
  return withTenant(db, scopeOf(caller), async (trx) => {
    const entity = (await store.findEntities(trx, caller, [q.entityId])).get(q.entityId);
    if (!entity || entity.permission < VIEW) throw entityNotFound("entity_id");
    if (entity.permission < EDIT) throw editDenied();
    const { rows } = await trx.raw<{ rows: { tags: string[] }[] }>("select tags from entity_version where tenant_id = ? and entity_id = ? and valid_to is null", [caller.tenantId, q.entityId]);
    const self = { title: entity.title, tags: rows[0]?.tags ?? [] };
    const candidates = await suggestionStore.findCandidates(trx, caller, q.entityId, self.tags, titleWords(self.title), CANDIDATE_LIMIT);
    const scored = candidates
      .map((c) => ({ suggestedEntityId: c.id, ...structureScore(self, c) }))
      .filter((c) => c.score >= q.minScore && c.score > 0)
      .sort((a, b) => b.score - a.score || a.suggestedEntityId.localeCompare(b.suggestedEntityId))
      .slice(0, q.max);
    const ids = await suggestionStore.upsertPending(trx, caller.tenantId, q.entityId, scored);
    return suggestionStore.findSuggestions(trx, caller, ids);
  });
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
