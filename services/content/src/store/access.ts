import type { Knex } from "@promptcraft/db";
import { apiKeyIdOf, roleGrants, type Caller } from "../domain/access.js";

/**
 * The access rule of domain/access.ts as one SQL expression: the caller's permission rank
 * (0 none, 1 view, 2 edit, 3 admin) on the entity row `entity` given its current version row
 * `current`. Single reads select it next to the entity; lists filter on `… >= 1` before paging,
 * so a page never holds what the caller may not see and never comes back short because of it.
 * Shares are live while `revoked_at is null and (expires_at is null or expires_at > now())`:
 * expiry is evaluated at read time, no job runs.
 */
export function permissionRankSql(knex: Knex, caller: Caller, aliases: { entity: string; current: string } = { entity: "e", current: "cv" }): Knex.Raw {
  const { entity: e, current: cv } = aliases;
  const grants = roleGrants(caller);
  const userId = caller.userId ?? null;
  return knex.raw(
    `least(?::int, greatest(
       ?::int,
       case when ${e}.owner_id = ?::uuid or ${e}.owner_api_key_id = ?::uuid then 3 else 0 end,
       case when ${cv}.visibility = 'tenant' then ?::int else 0 end,
       coalesce((select max(case s.permission when 'admin' then 3 when 'edit' then 2 else 1 end)
                 from share s
                 where s.tenant_id = ${e}.tenant_id and s.entity_id = ${e}.id and s.revoked_at is null
                   and (s.expires_at is null or s.expires_at > now())
                   and (s.grantee_type = 'tenant' or s.grantee_user_id = ?::uuid)), 0)))`,
    [grants.cap, grants.everyEntity, userId, apiKeyIdOf(caller), grants.tenantVisible, userId],
  );
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
export async function findEntityAccess(trx: Knex.Transaction, caller: Caller, entityId: string, lock = false): Promise<EntityAccessRow | undefined> {
  if (lock) {
    const locked = await trx.raw<{ rows: unknown[] }>("select 1 from entity where tenant_id = ? and id = ? for update", [caller.tenantId, entityId]);
    if (locked.rows.length === 0) return undefined;
  }
  const { rows } = await trx.raw<{ rows: EntityAccessRow[] }>(
    `select e.tenant_id, e.id, e.name, e.entity_type, e.owner_id, e.owner_api_key_id, e.current_version, e.row_version::text as row_version,
            e.deleted_at, e.purge_time, cv.visibility, ? as permission
     from entity e
     join entity_version cv on cv.tenant_id = e.tenant_id and cv.entity_id = e.id and cv.valid_to is null
     where e.tenant_id = ? and e.id = ?`,
    [permissionRankSql(trx, caller), caller.tenantId, entityId],
  );
  return rows[0];
}
