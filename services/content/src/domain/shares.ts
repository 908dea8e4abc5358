import { appendEvents, withTenant, type Knex } from "@promptcraft/db";
import { CURSOR_TIMESTAMP, CURSOR_UUID, decodePageCursor, NotFoundError, pageOf, pageSizeOf, type Actor } from "@promptcraft/platform";
import { findEntityAccess, type EntityAccessRow } from "../store/access.js";
import * as store from "../store/shares.js";
import { permissionOfRank, principalOf, requirePermission, type Caller, type PermissionLevel } from "./access.js";
import { changeEntity, entityEvent, requireLive, scopeOf } from "./entities.js";

/**
 * Shares: a grant of view, edit or admin on one entity to one user of the tenant or to everyone in
 * it, optionally until an expiry (evaluated in SQL at every read: no job). Managing shares (grant,
 * list, revoke) needs PERMISSION_ADMIN on the entity. Granting again to the same grantee replaces
 * permission and expiry of the same share; granting exactly what is already live changes nothing.
 * A grantee who is not a (non-deleted) user of the caller's tenant is NOT_FOUND, like an unknown
 * entity: users of other tenants are invisible, and their existence is not revealed.
 */

export type ShareRow = store.ShareRow;
export type SharePermission = store.SharePermission;

/**
 * The entity, for a read that needs `needed` on it (NOT_FOUND without view). Shared by the label,
 * share and favorite reads; changes lock the entity through `changeEntity` instead.
 */
export async function entityFor(
  trx: Knex.Transaction,
  caller: Caller,
  entityId: string,
  needed: Exclude<PermissionLevel, "none">,
  what: string,
): Promise<EntityAccessRow> {
  const entity = await findEntityAccess(trx, caller, entityId);
  requirePermission(permissionOfRank(entity?.permission ?? 0), needed, what);
  return entity!;
}

function shareEvent(entity: EntityAccessRow, eventType: string, share: ShareRow, actor: Actor) {
  return entityEvent(
    entity.tenant_id,
    entity.id,
    entity.row_version,
    eventType,
    {
      share_id: share.id,
      grantee_type: share.grantee_type,
      grantee_user_id: share.grantee_user_id,
      permission: share.permission,
      expire_time: share.expires_at?.toISOString() ?? null,
    },
    actor,
  );
}

export interface Grant {
  entityId: string;
  /** A user of the tenant, or null for everyone in it. */
  granteeUserId: string | null;
  permission: SharePermission;
  expiresAt: Date | null;
}

/** Grants (or re-grants) a share. Needs admin on the entity; the entity must not be deleted. */
export async function grantShare(db: Knex, caller: Caller, grant: Grant, actor: Actor): Promise<ShareRow> {
  return changeEntity(db, caller, grant.entityId, "admin", "sharing an entity", async (trx, entity) => {
    requireLive(entity);
    if (grant.granteeUserId !== null && !(await store.userExists(trx, caller.tenantId, grant.granteeUserId))) {
      throw new NotFoundError("user not found", { metadata: { resource_type: "user", user_id: grant.granteeUserId } });
    }
    const live = await store.findGranteeShare(trx, caller.tenantId, grant.entityId, grant.granteeUserId);
    if (live && !live.expired && live.permission === grant.permission && live.expires_at?.toISOString() === grant.expiresAt?.toISOString()) return live;
    const share = await store.upsertShare(trx, { tenantId: caller.tenantId, ...grant, grantedBy: principalOf(caller) });
    await appendEvents(trx, [shareEvent(entity, "content.share.granted", share, actor)]);
    return share;
  });
}

/** A page of the entity's shares, newest first. Needs admin on the entity. */
export async function listShares(
  db: Knex,
  caller: Caller,
  q: { entityId: string; showExpired: boolean; pageSize: number; pageToken: string },
): Promise<{ shares: ShareRow[]; nextPageToken: string }> {
  const params = { t: caller.tenantId, e: q.entityId, x: q.showExpired };
  const cursor = decodePageCursor(q.pageToken, params, { createdAt: CURSOR_TIMESTAMP, id: CURSOR_UUID });
  const limit = pageSizeOf(q.pageSize);
  return withTenant(db, scopeOf(caller), async (trx) => {
    await entityFor(trx, caller, q.entityId, "admin", "listing shares");
    const rows = await store.listShares(trx, caller.tenantId, q.entityId, { showExpired: q.showExpired, after: cursor ?? null, limit: limit + 1 });
    const { page, nextPageToken } = pageOf(rows, limit, params, (last) => ({ createdAt: last.created_at.toISOString(), id: last.id }));
    return { shares: page, nextPageToken };
  });
}

/** Revokes a share. Idempotent: an unknown or already revoked share id succeeds. Needs admin. */
export async function revokeShare(db: Knex, caller: Caller, entityId: string, shareId: string, actor: Actor): Promise<void> {
  await changeEntity(db, caller, entityId, "admin", "revoking a share", async (trx, entity) => {
    const revoked = await store.revokeShare(trx, caller.tenantId, entityId, shareId, caller.userId ?? null);
    if (revoked) await appendEvents(trx, [shareEvent(entity, "content.share.revoked", revoked, actor)]);
  });
}
