import { selectRows, sqlTime, type Knex, type Reader, type SqlBuilder } from "@promptcraft/db";
import { accessPrincipalOf, entityPermissionRankSql } from "@promptcraft/platform";
import type { Caller } from "../domain/access.js";

/**
 * SQL of `relationship` (the live edges) and `relationship_revision` (their history with validity
 * ranges), always for the caller's tenant: `tenant_id` in every condition, row-level security
 * beneath. Entities are content's: graph reads `entity`, `entity_version` and `entity_label` with
 * its SELECT grants and decides access with content's rule (the platform's `entityPermissionRankSql`).
 */

export type RelationshipType = "depends_on" | "part_of" | "derived_from" | "suggests";

/** A relationship row as the service reads it. */
export interface RelationshipRow {
  tenant_id: string;
  id: string;
  source_id: string;
  target_id: string;
  relationship_type: RelationshipType;
  strength: number;
  metadata: Record<string, unknown>;
  target_version: number | null;
  target_label: string | null;
  created_by: string | null;
  created_by_api_key_id: string | null;
  created_at: Date;
  updated_at: Date;
  /** The etag (AIP-154). */
  row_version: string;
  request_id: string | null;
}

const COLUMNS = `r.tenant_id, r.id, r.source_id, r.target_id, r.relationship_type, r.strength, r.metadata, r.target_version, r.target_label,
  r.created_by, r.created_by_api_key_id, r.created_at, r.updated_at, r.row_version::text as row_version, r.request_id`;

/**
 * The caller's permission rank on the entity whose row is `e` and current version row `cv`:
 * content's rule, the one expression content and search use too (`entityPermissionRankSql`), not a copy.
 */
export function permissionRankSql(knex: SqlBuilder, caller: Caller, e = "e", cv = "cv"): Knex.Raw {
  return entityPermissionRankSql(knex, accessPrincipalOf(caller), { entity: e, current: cv });
}

/** An entity as graph needs it: identity, kind, state, its current version, and the caller's rank on it. */
export interface EntityRow {
  id: string;
  entity_type: "context" | "template" | "workflow" | "library";
  title: string;
  current_version: number;
  deleted_at: Date | null;
  /** 0 none, 1 view, 2 edit, 3 admin. */
  permission: number;
}

/** The entities of `ids` that exist in the caller's tenant (deleted ones included), with the caller's rank on each. */
export async function findEntities(trx: Reader, caller: Caller, ids: readonly string[]): Promise<Map<string, EntityRow>> {
  if (ids.length === 0) return new Map();
  const rows = await selectRows<EntityRow>(
    trx,
    `select e.id, e.entity_type, cv.title, e.current_version, e.deleted_at, ? as permission
     from entity e
     join entity_version cv on cv.tenant_id = e.tenant_id and cv.entity_id = e.id and cv.valid_to is null
     where e.tenant_id = ? and e.id = any(?::uuid[])`,
    [permissionRankSql(trx, caller), caller.tenantId, [...ids]],
  );
  return new Map(rows.map((r) => [r.id, r]));
}

/** Whether the target has this version. */
export async function versionExists(trx: Reader, tenantId: string, entityId: string, version: number): Promise<boolean> {
  const rows = await selectRows(trx, "select 1 from entity_version where tenant_id = ? and entity_id = ? and version = ?", [tenantId, entityId, version]);
  return rows.length > 0;
}

/** Whether the entity carries this label now. */
export async function labelExists(trx: Reader, tenantId: string, entityId: string, label: string): Promise<boolean> {
  const rows = await selectRows(trx, "select 1 from entity_label where tenant_id = ? and entity_id = ? and label = ? and valid_to is null", [tenantId, entityId, label]);
  return rows.length > 0;
}

/**
 * Serialises every creation of an acyclic (depends_on / part_of) edge of the tenant until the
 * transaction ends. Two transactions can each add half of a cycle, each checking a graph without
 * the other's half: under this lock the second one's check runs after the first committed (its
 * statement takes a fresh snapshot in READ COMMITTED) and sees it. One lock for both types, since a
 * cycle may mix them.
 */
export async function lockAcyclicEdges(trx: Knex.Transaction, tenantId: string): Promise<void> {
  await trx.raw("select pg_advisory_xact_lock(hashtextextended('graph.acyclic:' || ?::text, 0))", [tenantId]);
}

/** Serialises the relationship changes of one source entity (the fan-out count, the request-id check). */
export async function lockSource(trx: Knex.Transaction, tenantId: string, sourceId: string): Promise<void> {
  await trx.raw("select pg_advisory_xact_lock(hashtextextended('graph.source:' || ?::text || ':' || ?::text, 0))", [tenantId, sourceId]);
}

/**
 * For a new acyclic edge source → target: whether the target already reaches the source (a
 * cycle), how long the longest acyclic chain below the target is, and above the source. Breadth
 * first over (node, depth) pairs — UNION keeps each pair once, so a diamond lattice costs nodes ×
 * depths, never paths — and cut at `limit + 1` levels: enough to tell a chain over the limit.
 */
export async function acyclicReach(trx: Knex.Transaction, tenantId: string, sourceId: string, targetId: string, limit: number): Promise<{ cycle: boolean; below: number; above: number }> {
  const { rows } = await trx.raw<{ rows: { cycle: boolean; below: number; above: number }[] }>(
    `with recursive down (node_id, depth) as (
       select ?::uuid, 0
       union
       select r.target_id, d.depth + 1
       from down d join relationship r on r.tenant_id = ? and r.source_id = d.node_id and r.relationship_type in ('depends_on', 'part_of')
       where d.depth <= ?
     ), up (node_id, depth) as (
       select ?::uuid, 0
       union
       select r.source_id, u.depth + 1
       from up u join relationship r on r.tenant_id = ? and r.target_id = u.node_id and r.relationship_type in ('depends_on', 'part_of')
       where u.depth <= ?
     )
     select exists (select 1 from down where node_id = ?::uuid) as cycle,
            (select max(depth) from down) as below,
            (select max(depth) from up) as above`,
    [targetId, tenantId, limit, sourceId, tenantId, limit, sourceId],
  );
  return rows[0]!;
}

/** The acyclic edges leaving `nodes` (for the path of a cycle, found breadth first). */
export async function acyclicEdgesFrom(trx: Knex.Transaction, tenantId: string, nodes: readonly string[]): Promise<{ source_id: string; target_id: string }[]> {
  const { rows } = await trx.raw<{ rows: { source_id: string; target_id: string }[] }>(
    "select source_id, target_id from relationship where tenant_id = ? and source_id = any(?::uuid[]) and relationship_type in ('depends_on', 'part_of') order by target_id",
    [tenantId, [...nodes]],
  );
  return rows;
}

/** Number of relationships leaving an entity. */
export async function countOutgoing(trx: Knex.Transaction, tenantId: string, sourceId: string): Promise<number> {
  const { rows } = await trx.raw<{ rows: { n: number }[] }>("select count(*)::int as n from relationship where tenant_id = ? and source_id = ?", [tenantId, sourceId]);
  return rows[0]!.n;
}

export async function findByRequestId(trx: Knex.Transaction, tenantId: string, requestId: string): Promise<RelationshipRow | undefined> {
  const { rows } = await trx.raw<{ rows: RelationshipRow[] }>(`select ${COLUMNS} from relationship r where r.tenant_id = ? and r.request_id = ?`, [tenantId, requestId]);
  return rows[0];
}

export async function findEdge(trx: Knex.Transaction, tenantId: string, sourceId: string, targetId: string, type: RelationshipType): Promise<RelationshipRow | undefined> {
  const { rows } = await trx.raw<{ rows: RelationshipRow[] }>(
    `select ${COLUMNS} from relationship r where r.tenant_id = ? and r.source_id = ? and r.target_id = ? and r.relationship_type = ?`,
    [tenantId, sourceId, targetId, type],
  );
  return rows[0];
}

/** A relationship by id; with `lock`, its row is locked for update (every change takes it first). */
export async function findRelationship(trx: Reader, tenantId: string, id: string, lock = false): Promise<RelationshipRow | undefined> {
  const rows = await selectRows<RelationshipRow>(trx, `select ${COLUMNS} from relationship r where r.tenant_id = ? and r.id = ?${lock ? " for update" : ""}`, [tenantId, id]);
  return rows[0];
}

export interface NewRelationship {
  tenantId: string;
  sourceId: string;
  targetId: string;
  type: RelationshipType;
  strength: number;
  metadata: Record<string, unknown>;
  targetVersion: number | null;
  targetLabel: string | null;
  createdBy: string | null;
  createdByApiKeyId: string | null;
  requestId: string | null;
}

/** Inserts a relationship and opens its first revision, valid from the same instant. */
export async function insertRelationship(trx: Knex.Transaction, r: NewRelationship): Promise<RelationshipRow> {
  const { rows } = await trx.raw<{ rows: RelationshipRow[] }>(
    `insert into relationship as r (tenant_id, source_id, target_id, relationship_type, strength, metadata, target_version, target_label,
                                    created_by, created_by_api_key_id, request_id, created_at, updated_at)
     values (?, ?, ?, ?, ?, ?::jsonb, ?, ?, ?, ?, ?, clock_timestamp(), clock_timestamp())
     returning ${COLUMNS}`,
    [r.tenantId, r.sourceId, r.targetId, r.type, r.strength, JSON.stringify(r.metadata), r.targetVersion, r.targetLabel, r.createdBy, r.createdByApiKeyId, r.requestId],
  );
  const row = rows[0]!;
  await openRevision(trx, row, row.created_at);
  return row;
}

/**
 * Opens the revision of the relationship's state `row`, valid from `from`. Revisions are numbered
 * per relationship; the relationship's row lock (or, for the first, its creation) orders them.
 */
async function openRevision(trx: Knex.Transaction, row: RelationshipRow, from: Date): Promise<void> {
  await trx.raw(
    `insert into relationship_revision (tenant_id, relationship_id, revision, source_id, target_id, relationship_type, strength,
                                        target_version, target_label, valid_from)
     values (?, ?, coalesce((select max(revision) from relationship_revision where tenant_id = ? and relationship_id = ?), 0) + 1,
             ?, ?, ?, ?, ?, ?, ?::timestamptz)`,
    [row.tenant_id, row.id, row.tenant_id, row.id, row.source_id, row.target_id, row.relationship_type, row.strength, row.target_version, row.target_label, sqlTime(from)],
  );
}

/** Closes the open revision of a relationship at `at`. */
async function closeRevision(trx: Knex.Transaction, tenantId: string, id: string, at: Date): Promise<void> {
  await trx.raw("update relationship_revision set valid_to = ?::timestamptz where tenant_id = ? and relationship_id = ? and valid_to is null", [sqlTime(at), tenantId, id]);
}

export interface RelationshipChange {
  strength: number;
  metadata: Record<string, unknown>;
  targetVersion: number | null;
  targetLabel: string | null;
}

/**
 * Writes the new state of a locked relationship; a change of what resolution reads (strength or
 * pin) closes the open revision and opens the next at the same instant.
 */
export async function updateRelationship(trx: Knex.Transaction, current: RelationshipRow, change: RelationshipChange): Promise<RelationshipRow> {
  const { rows } = await trx.raw<{ rows: RelationshipRow[] }>(
    `update relationship as r set strength = ?, metadata = ?::jsonb, target_version = ?, target_label = ?,
            updated_at = greatest(clock_timestamp(), r.updated_at + interval '1 microsecond'), row_version = r.row_version + 1
     where r.tenant_id = ? and r.id = ?
     returning ${COLUMNS}`,
    [change.strength, JSON.stringify(change.metadata), change.targetVersion, change.targetLabel, current.tenant_id, current.id],
  );
  const row = rows[0]!;
  if (row.strength !== current.strength || row.target_version !== current.target_version || row.target_label !== current.target_label) {
    await closeRevision(trx, row.tenant_id, row.id, row.updated_at);
    await openRevision(trx, row, row.updated_at);
  }
  return row;
}

/** Deletes a locked relationship (hard delete) and closes its history; returns when it ended. */
export async function deleteRelationship(trx: Knex.Transaction, current: RelationshipRow): Promise<void> {
  await trx.raw("delete from relationship where tenant_id = ? and id = ?", [current.tenant_id, current.id]);
  const { rows } = await trx.raw<{ rows: { at: Date }[] }>(
    "select greatest(clock_timestamp(), max(valid_from) + interval '1 microsecond') as at from relationship_revision where tenant_id = ? and relationship_id = ?",
    [current.tenant_id, current.id],
  );
  await closeRevision(trx, current.tenant_id, current.id, rows[0]!.at);
}

export interface ListFilter {
  entityId: string;
  outgoing: boolean;
  incoming: boolean;
  types: RelationshipType[];
  minStrength: number;
  after?: { createdAt: string; id: string };
  limit: number;
}

/**
 * The relationships of one entity whose other end the caller may view, newest first (keyset on
 * created_at, id). The visibility filter comes before the limit: a page is never short because of it.
 */
export async function listRelationships(trx: Reader, caller: Caller, f: ListFilter): Promise<RelationshipRow[]> {
  const sides: string[] = [];
  if (f.outgoing) sides.push("r.source_id = ?::uuid");
  if (f.incoming) sides.push("r.target_id = ?::uuid");
  const where = ["r.tenant_id = ?", `(${sides.join(" or ")})`, "r.strength >= ?", "? >= 1"];
  const bindings: Knex.RawBinding[] = [f.entityId, caller.tenantId, ...sides.map(() => f.entityId), f.minStrength, permissionRankSql(trx, caller)];
  if (f.types.length > 0) {
    where.push("r.relationship_type = any(?::text[])");
    bindings.push(f.types);
  }
  if (f.after) {
    where.push("(r.created_at, r.id) < (?::timestamptz, ?::uuid)");
    bindings.push(f.after.createdAt, f.after.id);
  }
  return selectRows<RelationshipRow>(
    trx,
    `select ${COLUMNS}
     from relationship r
     -- The other end, one index probe per row (an OR in the join condition could not use the key).
     join entity e on e.tenant_id = r.tenant_id and e.id = case when r.source_id = ?::uuid then r.target_id else r.source_id end
     join entity_version cv on cv.tenant_id = e.tenant_id and cv.entity_id = e.id and cv.valid_to is null
     where ${where.join(" and ")}
     order by r.created_at desc, r.id desc
     limit ?`,
    [...bindings, f.limit],
  );
}
