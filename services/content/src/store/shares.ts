import { selectRows, sqlTime, type Knex, type Reader } from "@promptcraft/db";
import { principalColumns, type Principal } from "../domain/access.js";

/**
 * Shares: one unrevoked row per (entity, grantee) (`share_grantee_key`); granting again updates
 * that row (same id). Revoking sets `revoked_at`: the row leaves every listing and access check. A
 * share is live while unrevoked and not past `expires_at`, evaluated in SQL at read time, so expiry
 * needs no job.
 */

export type SharePermission = "view" | "edit" | "admin";

export interface ShareRow {
  id: string;
  entity_id: string;
  grantee_type: "user" | "tenant";
  grantee_user_id: string | null;
  permission: SharePermission;
  /** Who granted (or last regranted) it: a user, or (`created_by_api_key_id`) an API key. */
  created_by: string | null;
  created_by_api_key_id: string | null;
  created_at: Date;
  updated_at: Date;
  expires_at: Date | null;
  expired: boolean;
}

const COLUMNS = `id, entity_id, grantee_type, grantee_user_id, permission, created_by, created_by_api_key_id, created_at, updated_at, expires_at,
  (expires_at is not null and expires_at <= now()) as expired`;

/** Whether a (not deleted) user of the tenant has this id. Another tenant's users are invisible (RLS). */
export async function userExists(trx: Knex.Transaction, tenantId: string, userId: string): Promise<boolean> {
  const { rows } = await trx.raw<{ rows: unknown[] }>("select 1 from app_user where tenant_id = ? and id = ? and deleted_at is null", [tenantId, userId]);
  return rows.length > 0;
}

/** The unrevoked share of a grantee (expired or not). */
export async function findGranteeShare(
  trx: Knex.Transaction,
  tenantId: string,
  entityId: string,
  granteeUserId: string | null,
): Promise<ShareRow | undefined> {
  const { rows } = await trx.raw<{ rows: ShareRow[] }>(
    `select ${COLUMNS} from share
     where tenant_id = ? and entity_id = ? and grantee_type = ? and grantee_user_id is not distinct from ?::uuid and revoked_at is null`,
    [tenantId, entityId, granteeUserId === null ? "tenant" : "user", granteeUserId],
  );
  return rows[0];
}

/** Grants (or re-grants, replacing permission and expiry of the unrevoked share: same id). */
export async function upsertShare(
  trx: Knex.Transaction,
  s: { tenantId: string; entityId: string; granteeUserId: string | null; permission: SharePermission; expiresAt: Date | null; grantedBy: Principal },
): Promise<ShareRow> {
  const { rows } = await trx.raw<{ rows: ShareRow[] }>(
    `insert into share as s (tenant_id, entity_id, grantee_type, grantee_user_id, permission, created_by, created_by_api_key_id, expires_at)
     values (?, ?, ?, ?, ?, ?, ?, ?)
     on conflict (tenant_id, entity_id, grantee_type, grantee_user_id) where revoked_at is null
     do update set permission = excluded.permission, expires_at = excluded.expires_at, created_by = excluded.created_by,
                   created_by_api_key_id = excluded.created_by_api_key_id, updated_at = clock_timestamp()
     returning ${COLUMNS}`,
    [
      s.tenantId,
      s.entityId,
      s.granteeUserId === null ? "tenant" : "user",
      s.granteeUserId,
      s.permission,
      ...principalColumns(s.grantedBy),
      s.expiresAt && sqlTime(s.expiresAt),
    ],
  );
  return rows[0]!;
}

/** Revokes an unrevoked share of the entity; undefined if there is none with this id. */
export async function revokeShare(
  trx: Knex.Transaction,
  tenantId: string,
  entityId: string,
  shareId: string,
  revokedBy: string | null,
): Promise<ShareRow | undefined> {
  const { rows } = await trx.raw<{ rows: ShareRow[] }>(
    `update share set revoked_at = clock_timestamp(), revoked_by = ?
     where tenant_id = ? and entity_id = ? and id = ? and revoked_at is null
     returning ${COLUMNS}`,
    [revokedBy, tenantId, entityId, shareId],
  );
  return rows[0];
}

/** A page of the entity's unrevoked shares, newest first; expired ones only with `showExpired`. */
export async function listShares(
  trx: Reader,
  tenantId: string,
  entityId: string,
  q: { showExpired: boolean; after: { createdAt: string; id: string } | null; limit: number },
): Promise<ShareRow[]> {
  const rows = await selectRows<ShareRow>(trx, 
    `select ${COLUMNS} from share
     where tenant_id = ? and entity_id = ? and revoked_at is null
       and (?::boolean or expires_at is null or expires_at > now())
       and (?::timestamptz is null or (created_at, id) < (?::timestamptz, ?::uuid))
     order by created_at desc, id desc
     limit ?`,
    [tenantId, entityId, q.showExpired, q.after?.createdAt ?? null, q.after?.createdAt ?? null, q.after?.id ?? null, q.limit],
  );
  return rows;
}
