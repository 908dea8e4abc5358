import { selectRows, type Knex, type Reader, type SqlBuilder } from "@promptcraft/db";
import { accessPrincipalOf, entityPermissionRankSql } from "@promptcraft/platform";
import type { Caller } from "../domain/access.js";

/**
 * The access rule of domain/access.ts as one SQL expression: the caller's permission rank
 * (0 none, 1 view, 2 edit, 3 admin) on the entity row `entity` given its current version row
 * `current`. Single reads select it next to the entity; lists filter on `… >= 1` before paging,
 * so a page never holds what the caller may not see and never comes back short because of it.
 * The expression is the platform's (`entityPermissionRankSql`), shared with search, which applies
 * the same rule inside its ranked queries.
 */
export function permissionRankSql(knex: SqlBuilder, caller: Caller, aliases: { entity: string; current: string } = { entity: "e", current: "cv" }): Knex.Raw {
  return entityPermissionRankSql(knex, accessPrincipalOf(caller), aliases);
}

/** What access checks need of one entity: identity fields, state, and the caller's permission rank. */
export interface EntityAccessRow {
  tenant_id: string;
  id: string;
  /** The entity's current name. */
  name: string;
  entity_type: string;
  owner_id: string | null;
  owner_api_key_id: string | null;
  current_version: number;
  /** The etag (AIP-154). */
  row_version: string;
  deleted_at: Date | null;
  purge_time: Date | null;
  /** Visibility of the current version. */
  visibility: "private" | "tenant";
  /** 0 none, 1 view, 2 edit, 3 admin (domain/access.ts `permissionOfRank`). */
  permission: number;
}

/**
 * The entity (deleted ones included) with the caller's permission on it, or undefined when it
 * does not exist in the caller's tenant. With `lock`, the entity row is locked for update: every
 * change of an entity (a version, delete, undelete, purge, a label or share change) takes this
 * lock first, which serialises them and makes etag checks exact.
 *
 * The lock is its own statement, before the read: a statement that waited for a row lock re-reads
 * only the locked row and keeps the rest of its snapshot (shares, the current version's visibility),
 * so a write queued behind a revoke would have been judged by the access from before it. The read
 * after the lock has a fresh snapshot (READ COMMITTED) and sees what the previous holder committed.
 */
export async function findEntityAccess(trx: Reader, caller: Caller, entityId: string, lock = false): Promise<EntityAccessRow | undefined> {
  if (lock) {
    // (In a read-only reader this fails: a lock is for a transaction that writes.)
    const locked = await selectRows(trx, "select 1 from entity where tenant_id = ? and id = ? for update", [caller.tenantId, entityId]);
    if (locked.length === 0) return undefined;
  }
  const rows = await selectRows<EntityAccessRow>(trx, 
    `select e.tenant_id, e.id, e.name, e.entity_type, e.owner_id, e.owner_api_key_id, e.current_version, e.row_version::text as row_version,
            e.deleted_at, e.purge_time, cv.visibility, ? as permission
     from entity e
     join entity_version cv on cv.tenant_id = e.tenant_id and cv.entity_id = e.id and cv.valid_to is null
     where e.tenant_id = ? and e.id = ?`,
    [permissionRankSql(trx, caller), caller.tenantId, entityId],
  );
  return rows[0];
}
