import { selectRows, type Knex, type Reader, type VersionFields } from "@promptcraft/db";
import { principalColumns, type Principal } from "../domain/access.js";

/**
 * SQL of `entity_version`: writing a version and reading the history. The schema enforces the
 * temporal invariants (one current version, no overlap, version n+1 starts exactly when n ended,
 * gap-free numbering); this code writes versions the one way it allows.
 */

/** The columns of a version's own fields, in the order of {@link versionFieldParams}. */
export const VERSION_FIELD_COLUMNS =
  "title, description, status, visibility, content, tags, metadata, commit_message, author_id, author_api_key_id, content_hash";
/** The placeholders matching VERSION_FIELD_COLUMNS. */
export const VERSION_FIELD_VALUES = "?, ?, ?, ?, ?::jsonb, ?::text[], ?::jsonb, ?, ?, ?, ?";

/** The parameters for VERSION_FIELD_VALUES: the fields, the commit message, the author (a user or an API key) and the content hash. */
export function versionFieldParams(v: { fields: VersionFields; commitMessage: string; author: Principal; hash: string }): Knex.Value[] {
  const f = v.fields;
  return [f.title, f.description, f.status, f.visibility, JSON.stringify(f.content), f.tags, JSON.stringify(f.metadata), v.commitMessage, ...principalColumns(v.author), v.hash];
}

/** The versioned fields of one version, with its number and hash. */
export interface VersionRow extends VersionFields {
  version: number;
  content_hash: string;
}

/** The versioned fields of a version of the entity, or undefined when it has no such version. */
export async function findVersion(trx: Reader, tenantId: string, entityId: string, version: number): Promise<VersionRow | undefined> {
  const rows = await selectRows<VersionRow>(trx, 
    `select version, title, description, status, visibility, content, tags, metadata, content_hash
     from entity_version where tenant_id = ? and entity_id = ? and version = ?`,
    [tenantId, entityId, version],
  );
  return rows[0];
}

/** The current version's fields. */
export async function findCurrentVersion(trx: Knex.Transaction, tenantId: string, entityId: string): Promise<VersionRow> {
  const { rows } = await trx.raw<{ rows: VersionRow[] }>(
    `select version, title, description, status, visibility, content, tags, metadata, content_hash
     from entity_version where tenant_id = ? and entity_id = ? and valid_to is null`,
    [tenantId, entityId],
  );
  return rows[0]!;
}

/**
 * Writes version n+1 of an entity the caller has locked (store/access.ts `findEntityAccess` with
 * `lock`), in one statement: bump the entity (`current_version`, `row_version`, `updated_at`), close
 * version n at that instant (`valid_to = t`) and insert n+1 valid from the same `t` with
 * `previous_version = n`. `clock_timestamp()`, not `now()` (the transaction's start): a
 * transaction that waited for the lock must not start its version before the one it waited for.
 *
 * @returns the new version number and the new etag.
 */
export async function insertNextVersion(
  trx: Knex.Transaction,
  v: {
    tenantId: string;
    entityId: string;
    fields: VersionFields;
    hash: string;
    commitMessage: string;
    author: Principal;
    rolledBackFrom: number | null;
    /** AIP-155 request id of the call, remembered for its retries. */
    requestId: string | null;
  },
): Promise<{ version: number; row_version: string }> {
  const { rows } = await trx.raw<{ rows: { version: number; row_version: string }[] }>(
    `with bumped as (
       update entity e
       set current_version = e.current_version + 1, row_version = e.row_version + 1, updated_at = clock_timestamp()
       where e.tenant_id = ? and e.id = ?
       returning e.tenant_id, e.id, e.current_version, e.row_version, e.updated_at
     ), closed as (
       update entity_version v
       set valid_to = b.updated_at
       from bumped b
       where v.tenant_id = b.tenant_id and v.entity_id = b.id and v.valid_to is null
       returning v.version, v.valid_to
     ), inserted as (
       insert into entity_version (tenant_id, entity_id, version, previous_version, ${VERSION_FIELD_COLUMNS},
                                   rolled_back_from, request_id, valid_from)
       select b.tenant_id, b.id, b.current_version, c.version, ${VERSION_FIELD_VALUES}, ?, ?, c.valid_to
       from bumped b cross join closed c
       returning version
     )
     select i.version, b.row_version::text as row_version from inserted i cross join bumped b`,
    [v.tenantId, v.entityId, ...versionFieldParams(v), v.rolledBackFrom, v.requestId],
  );
  return rows[0]!;
}

/** The version an earlier call with this request id wrote, if any (AIP-155 retries of Update / Rollback). */
export async function findVersionByRequestId(trx: Knex.Transaction, tenantId: string, entityId: string, requestId: string): Promise<number | undefined> {
  const { rows } = await trx.raw<{ rows: { version: number }[] }>(
    "select version from entity_version where tenant_id = ? and entity_id = ? and request_id = ?",
    [tenantId, entityId, requestId],
  );
  return rows[0]?.version;
}
