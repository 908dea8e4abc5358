import { selectRows, sqlTime, type Knex, type Reader } from "@promptcraft/db";
import type { Caller } from "../domain/access.js";
import { permissionRankSql, type EntityRow, type RelationshipRow, type RelationshipType } from "./relationships.js";

/**
 * SQL of the walks (GetEntityGraph, ResolveDependencies, AnalyzeImpact). Each walk is breadth
 * first in the domain, one statement per level over the frontier: every node is expanded exactly
 * once (no path enumeration), and each level's statement joins the entities reached so that the
 * caller's visibility (content's rule) decides, in the same statement, which nodes the walk may
 * enter at all.
 */

/** An edge leaving (or entering) the frontier, with the entity at its far end. */
export interface StepRow {
  relationship_id: string;
  source_id: string;
  target_id: string;
  relationship_type: RelationshipType;
  strength: number;
  target_version: number | null;
  target_label: string | null;
  /** The entity at the far end. */
  next_id: string;
  entity_type: EntityRow["entity_type"];
  title: string;
  current_version: number;
  deleted_at: Date | null;
  permission: number;
}

export interface StepQuery {
  tenantId: string;
  frontier: readonly string[];
  outgoing: boolean;
  incoming: boolean;
  types: readonly RelationshipType[];
  minStrength: number;
}

/** The live edges between the frontier and its neighbours, with each neighbour as the caller sees it. */
export async function step(trx: Reader, caller: Caller, q: StepQuery): Promise<StepRow[]> {
  const { sql, bindings } = stepEdges(q);
  return selectRows<StepRow>(
    trx,
    `select s.*, e.entity_type, cv.title, e.current_version, e.deleted_at, ? as permission
     from (${sql}) s
     join entity e on e.tenant_id = ? and e.id = s.next_id
     join entity_version cv on cv.tenant_id = e.tenant_id and cv.entity_id = e.id and cv.valid_to is null
     order by s.strength desc, s.next_id, s.relationship_id`,
    [permissionRankSql(trx, caller), ...bindings, caller.tenantId],
  );
}

/**
 * The next level of a bounded walk (GetEntityGraph): the neighbours of the frontier not yet `seen`,
 * each once (through its strongest edge), that the caller may view (and live unless
 * `includeDeleted`), strongest first, at most `limit`. Filtering and limiting in the statement keeps
 * a hub's thousands of edges out of the service: only what the walk can still take comes back.
 */
export async function stepNodes(trx: Reader, caller: Caller, q: StepQuery & { seen: readonly string[]; includeDeleted: boolean; limit: number }): Promise<StepRow[]> {
  const { sql, bindings } = stepEdges(q);
  return selectRows<StepRow>(
    trx,
    `select * from (
       select distinct on (s.next_id) s.*, e.entity_type, cv.title, e.current_version, e.deleted_at, ? as permission
       from (${sql}) s
       left join unnest(?::uuid[]) as seen (id) on seen.id = s.next_id
       join entity e on e.tenant_id = ? and e.id = s.next_id
       join entity_version cv on cv.tenant_id = e.tenant_id and cv.entity_id = e.id and cv.valid_to is null
       where seen.id is null ${q.includeDeleted ? "" : "and e.deleted_at is null"}
       order by s.next_id, s.strength desc, s.relationship_id
     ) x
     where x.permission >= 1
     order by x.strength desc, x.next_id
     limit ?`,
    [permissionRankSql(trx, caller), ...bindings, [...q.seen], caller.tenantId, q.limit],
  );
}

/** The live edges between the frontier and its neighbours (`next_id` the far end), as SQL. */
function stepEdges(q: StepQuery): { sql: string; bindings: Knex.RawBinding[] } {
  const branches: string[] = [];
  const bindings: Knex.RawBinding[] = [];
  const typeFilter = q.types.length > 0 ? "and r.relationship_type = any(?::text[])" : "";
  for (const [enabled, from, to] of [
    [q.outgoing, "source_id", "target_id"],
    [q.incoming, "target_id", "source_id"],
  ] as const) {
    if (!enabled) continue;
    branches.push(`select r.id as relationship_id, r.source_id, r.target_id, r.relationship_type, r.strength, r.target_version, r.target_label, r.${to} as next_id
                   from relationship r
                   where r.tenant_id = ? and r.${from} = any(?::uuid[]) and r.strength >= ? ${typeFilter}`);
    bindings.push(q.tenantId, [...q.frontier], q.minStrength);
    if (q.types.length > 0) bindings.push([...q.types]);
  }
  return { sql: branches.join(" union all "), bindings };
}

/** The live edges among `nodes` (both ends in the set), of the given types and strength. */
export async function edgesAmong(trx: Reader, tenantId: string, nodes: readonly string[], types: readonly RelationshipType[], minStrength: number): Promise<RelationshipRow[]> {
  const bindings: Knex.RawBinding[] = [tenantId, [...nodes], [...nodes], minStrength];
  if (types.length > 0) bindings.push([...types]);
  return selectRows<RelationshipRow>(
    trx,
    `select r.tenant_id, r.id, r.source_id, r.target_id, r.relationship_type, r.strength, r.metadata, r.target_version, r.target_label,
            r.created_by, r.created_by_api_key_id, r.created_at, r.updated_at, r.row_version::text as row_version, r.request_id
     from relationship r
     where r.tenant_id = ? and r.source_id = any(?::uuid[]) and r.target_id = any(?::uuid[]) and r.strength >= ?
       ${types.length > 0 ? "and r.relationship_type = any(?::text[])" : ""}
     order by r.source_id, r.target_id, r.relationship_type`,
    bindings,
  );
}

/** Whether any edge of these types leaves the frontier in the direction walked (to tell a depth cut). */
export async function anyStep(trx: Reader, tenantId: string, frontier: readonly string[], incoming: boolean, types: readonly RelationshipType[]): Promise<boolean> {
  const from = incoming ? "target_id" : "source_id";
  const rows = await selectRows(trx, `select 1 from relationship r where r.tenant_id = ? and r.${from} = any(?::uuid[]) and r.relationship_type = any(?::text[]) limit 1`, [
    tenantId,
    [...frontier],
    [...types],
  ]);
  return rows.length > 0;
}

/** A dependency edge valid at the resolution time, with its target resolved as of then. */
export interface ResolvedStepRow {
  relationship_id: string;
  source_id: string;
  target_id: string;
  relationship_type: RelationshipType;
  target_version: number | null;
  target_label: string | null;
  /** Null when the target entity no longer exists (purged). */
  entity_type: EntityRow["entity_type"] | null;
  deleted_at: Date | null;
  permission: number;
  /** The version the pin resolves to at the time, null when none (missing label or version). */
  version: number | null;
  title: string | null;
}

/**
 * The dependency edges leaving the frontier as they were at `time` (relationship_revision valid
 * then: an edge added, re-pinned or deleted since does not count), each target resolved as of
 * `time`: a pinned version as it is; a label to the version it pointed to then (entity_label
 * history); no pin to the version current then (entity_version history).
 */
export async function resolveStep(trx: Reader, caller: Caller, frontier: readonly string[], types: readonly RelationshipType[], time: Date): Promise<ResolvedStepRow[]> {
  const at = sqlTime(time);
  return selectRows<ResolvedStepRow>(
    trx,
    `select rv.relationship_id, rv.source_id, rv.target_id, rv.relationship_type, rv.target_version, rv.target_label,
            e.entity_type, e.deleted_at, coalesce(?, 0) as permission, v.version, v.title
     from relationship_revision rv
     left join entity e on e.tenant_id = rv.tenant_id and e.id = rv.target_id
     left join entity_version cv on cv.tenant_id = e.tenant_id and cv.entity_id = e.id and cv.valid_to is null
     left join lateral (
       select x.version, x.title from entity_version x
       where x.tenant_id = rv.tenant_id and x.entity_id = rv.target_id
         and x.version = case
           when rv.target_version is not null then rv.target_version
           when rv.target_label is not null then (
             select l.version from entity_label l
             where l.tenant_id = rv.tenant_id and l.entity_id = rv.target_id and l.label = rv.target_label
               and l.valid_from <= ?::timestamptz and (l.valid_to is null or l.valid_to > ?::timestamptz))
           else (
             select c.version from entity_version c
             where c.tenant_id = rv.tenant_id and c.entity_id = rv.target_id
               and c.valid_from <= ?::timestamptz and (c.valid_to is null or c.valid_to > ?::timestamptz))
           end
     ) v on true
     where rv.tenant_id = ? and rv.source_id = any(?::uuid[]) and rv.relationship_type = any(?::text[])
       and rv.valid_from <= ?::timestamptz and (rv.valid_to is null or rv.valid_to > ?::timestamptz)
     order by rv.source_id, rv.target_id, rv.relationship_type`,
    [permissionRankSql(trx, caller), at, at, at, at, caller.tenantId, [...frontier], [...types], at, at],
  );
}

/** The live labels of each entity (any version), by entity. */
export async function labelsOf(trx: Reader, tenantId: string, entityIds: readonly string[]): Promise<Map<string, string[]>> {
  if (entityIds.length === 0) return new Map();
  const rows = await selectRows<{ entity_id: string; labels: string[] }>(
    trx,
    `select l.entity_id, array_agg(l.label order by l.label) as labels from entity_label l
     where l.tenant_id = ? and l.entity_id = any(?::uuid[]) and l.valid_to is null group by l.entity_id`,
    [tenantId, [...entityIds]],
  );
  return new Map(rows.map((r) => [r.entity_id, r.labels]));
}

/** The database's clock (the resolution time of a call that names none). */
export async function databaseNow(trx: Reader): Promise<Date> {
  const rows = await selectRows<{ now: Date }>(trx, "select clock_timestamp() as now");
  return rows[0]!.now;
}
