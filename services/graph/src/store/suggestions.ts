import { selectRows, type Knex, type Reader } from "@promptcraft/db";
import type { Caller } from "../domain/access.js";
import { permissionRankSql, type RelationshipType } from "./relationships.js";

/** SQL of `suggestion`, for the caller's tenant (`tenant_id` in every condition, RLS beneath). */

export type SuggestionKind = "similar" | "co_used" | "dependency" | "model";
export type SuggestionStatus = "open" | "accepted" | "dismissed";

export interface SuggestionRow {
  tenant_id: string;
  id: string;
  entity_id: string;
  suggested_entity_id: string;
  /** Title of the suggested entity's current version. */
  suggested_title: string;
  relationship_type: RelationshipType;
  kind: SuggestionKind;
  score: number;
  reason: string;
  status: SuggestionStatus;
  created_at: Date;
  decided_at: Date | null;
  decided_by: string | null;
  relationship_id: string | null;
  dismiss_reason: string;
  /** Every source that found the pair (`kind` alone for suggestions stored before sources were kept). */
  sources: SuggestionKind[];
  /** The caller's rank on the suggestion's entity (findSuggestions only). */
  source_permission?: number;
}

const COLUMNS = `s.tenant_id, s.id, s.entity_id, s.suggested_entity_id, sv.title as suggested_title, s.relationship_type, s.kind, s.score, s.reason,
  s.status, s.created_at, s.decided_at, s.decided_by, s.relationship_id, s.dismiss_reason,
  case when jsonb_typeof(s.metadata -> 'sources') = 'array' then array(select jsonb_array_elements_text(s.metadata -> 'sources'))
       else array[s.kind] end as sources`;

/** Joins of a suggestion to both entities' current rows, for titles and the caller's visibility of both. */
const JOINS = `join entity se on se.tenant_id = s.tenant_id and se.id = s.entity_id
  join entity_version sev on sev.tenant_id = se.tenant_id and sev.entity_id = se.id and sev.valid_to is null
  join entity te on te.tenant_id = s.tenant_id and te.id = s.suggested_entity_id
  join entity_version sv on sv.tenant_id = te.tenant_id and sv.entity_id = te.id and sv.valid_to is null`;

/** A candidate for a suggestion: a live entity the caller may view, with its current tags and title. */
export interface CandidateRow {
  id: string;
  title: string;
  tags: string[];
}

/**
 * Conditions on `e` (an entity) and `cv` (its current version) of a candidate for `entityId`: live,
 * not the entity, viewable by the caller, no relationship with it (either direction), no decided
 * suggestion for the pair. Bindings: tenant, entity, the caller's rank, entity ×3.
 */
const ELIGIBLE = `e.tenant_id = ? and e.id <> ? and e.deleted_at is null and ? >= 1
  and not exists (select 1 from relationship r where r.tenant_id = e.tenant_id
                    and ((r.source_id = ? and r.target_id = e.id) or (r.source_id = e.id and r.target_id = ?)))
  and not exists (select 1 from suggestion d where d.tenant_id = e.tenant_id and d.entity_id = ? and d.suggested_entity_id = e.id
                    and d.status <> 'open')`;

function eligibleBindings(trx: Reader, caller: Caller, entityId: string): Knex.RawBinding[] {
  return [caller.tenantId, entityId, permissionRankSql(trx, caller), entityId, entityId, entityId];
}

/** Eligible candidates (see ELIGIBLE) that share a tag or a title word with the entity: at most `limit`, most shared tags first. */
export async function findCandidates(trx: Reader, caller: Caller, entityId: string, tags: string[], words: string[], limit: number): Promise<CandidateRow[]> {
  return selectRows<CandidateRow>(
    trx,
    `select e.id, cv.title, cv.tags
     from entity e
     join entity_version cv on cv.tenant_id = e.tenant_id and cv.entity_id = e.id and cv.valid_to is null
     where ${ELIGIBLE}
       and (cv.tags && ?::text[] or regexp_split_to_array(lower(cv.title), '[^[:alnum:]]+') && ?::text[])
     order by cardinality(array(select unnest(cv.tags) intersect select unnest(?::text[]))) desc, e.id
     limit ?`,
    [...eligibleBindings(trx, caller, entityId), tags, words, tags, limit],
  );
}

/** The eligible candidates (see ELIGIBLE) among `ids` (another source's finds: graph checks access itself too). */
export async function findCandidatesByIds(trx: Reader, caller: Caller, entityId: string, ids: readonly string[]): Promise<CandidateRow[]> {
  if (ids.length === 0) return [];
  return selectRows<CandidateRow>(
    trx,
    `select e.id, cv.title, cv.tags
     from entity e
     join entity_version cv on cv.tenant_id = e.tenant_id and cv.entity_id = e.id and cv.valid_to is null
     where ${ELIGIBLE} and e.id = any(?::uuid[])`,
    [...eligibleBindings(trx, caller, entityId), [...ids]],
  );
}

export interface NewSuggestion {
  suggestedEntityId: string;
  /** The source of the score. */
  kind: SuggestionKind;
  /** Every source that found the pair (kept in `metadata.sources`). */
  sources: SuggestionKind[];
  score: number;
  reason: string;
}

/**
 * Stores suggestions for `entityId` as pending (type `suggests`), one per pair whatever its
 * sources: a pair already pending (under any kind) gets the new kind, score, reason and sources; a
 * new pair is inserted; a decided pair is left alone and not returned.
 */
export async function upsertPending(trx: Knex.Transaction, tenantId: string, entityId: string, suggestions: NewSuggestion[]): Promise<string[]> {
  if (suggestions.length === 0) return [];
  const { rows } = await trx.raw<{ rows: { id: string }[] }>(
    `with x as (
       select * from unnest(?::uuid[], ?::text[], ?::double precision[], ?::text[], ?::jsonb[]) as x(suggested, kind, score, reason, metadata)
     ), updated as (
       update suggestion s set kind = x.kind, score = x.score, reason = x.reason, metadata = s.metadata || x.metadata
       from x
       where s.tenant_id = ? and s.entity_id = ? and s.suggested_entity_id = x.suggested and s.user_id is null and s.status = 'open'
       returning s.id
     ), inserted as (
       insert into suggestion (tenant_id, entity_id, suggested_entity_id, kind, score, reason, metadata)
       select ?, ?, x.suggested, x.kind, x.score, x.reason, x.metadata
       from x
       where not exists (select 1 from suggestion d where d.tenant_id = ? and d.entity_id = ? and d.suggested_entity_id = x.suggested and d.user_id is null)
       on conflict do nothing
       returning id
     )
     select id from updated union all select id from inserted`,
    [
      suggestions.map((x) => x.suggestedEntityId),
      suggestions.map((x) => x.kind),
      suggestions.map((x) => x.score),
      suggestions.map((x) => x.reason),
      suggestions.map((x) => JSON.stringify({ sources: x.sources })),
      tenantId,
      entityId,
      tenantId,
      entityId,
      tenantId,
      entityId,
    ],
  );
  return rows.map((r) => r.id);
}

/** Suggestions by id whose two entities the caller may view, by descending score. */
export async function findSuggestions(trx: Reader, caller: Caller, ids: readonly string[], lock = false): Promise<SuggestionRow[]> {
  if (ids.length === 0) return [];
  return selectRows<SuggestionRow>(
    trx,
    `select ${COLUMNS}, ? as source_permission
     from suggestion s ${JOINS}
     where s.tenant_id = ? and s.id = any(?::uuid[]) and ? >= 1 and ? >= 1
     order by s.score desc, s.id${lock ? " for update of s" : ""}`,
    [permissionRankSql(trx, caller, "se", "sev"), caller.tenantId, [...ids], permissionRankSql(trx, caller, "se", "sev"), permissionRankSql(trx, caller, "te", "sv")],
  );
}

export interface SuggestionFilter {
  entityId?: string;
  statuses: SuggestionStatus[];
  minScore: number;
  after?: { score: string; id: string };
  limit: number;
}

/** A page of suggestions whose two entities the caller may view, by descending score (then id). */
export async function listSuggestions(trx: Reader, caller: Caller, f: SuggestionFilter): Promise<SuggestionRow[]> {
  const where = ["s.tenant_id = ?", "s.status = any(?::text[])", "s.score >= ?", "? >= 1", "? >= 1"];
  const bindings: Knex.RawBinding[] = [caller.tenantId, f.statuses, f.minScore, permissionRankSql(trx, caller, "se", "sev"), permissionRankSql(trx, caller, "te", "sv")];
  if (f.entityId) {
    where.push("s.entity_id = ?");
    bindings.push(f.entityId);
  }
  if (f.after) {
    where.push("(s.score < ?::double precision or (s.score = ?::double precision and s.id > ?::uuid))");
    bindings.push(f.after.score, f.after.score, f.after.id);
  }
  return selectRows<SuggestionRow>(trx, `select ${COLUMNS} from suggestion s ${JOINS} where ${where.join(" and ")} order by s.score desc, s.id limit ?`, [...bindings, f.limit]);
}

/** Records the decision on a locked, open suggestion. */
export async function decide(
  trx: Knex.Transaction,
  tenantId: string,
  id: string,
  decision: { status: "accepted"; relationshipId: string; by: string | null } | { status: "dismissed"; reason: string; by: string | null },
): Promise<void> {
  await trx.raw(
    `update suggestion set status = ?, decided_at = clock_timestamp(), decided_by = ?, relationship_id = ?, dismiss_reason = ?
     where tenant_id = ? and id = ?`,
    [decision.status, decision.by, decision.status === "accepted" ? decision.relationshipId : null, decision.status === "dismissed" ? decision.reason : "", tenantId, id],
  );
}
