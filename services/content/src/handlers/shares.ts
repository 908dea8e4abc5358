import type { MessageInitShape } from "@bufbuild/protobuf";
import { actorOf, callerOf, dbTimeFromTimestamp, invertEnumMap, principalName, timestampFromDb, type ServiceDeps, type ServiceHandlers } from "@promptcraft/platform";
import type { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { Permission, type ShareSchema } from "@promptcraft/proto/promptcraft/content/v1/resources_pb";
import type { ContentConfig } from "../config.js";
import * as shares from "../domain/shares.js";

const PERMISSION_TO_PROTO: Record<shares.SharePermission, Permission> = { view: Permission.VIEW, edit: Permission.EDIT, admin: Permission.ADMIN };
const PERMISSION_FROM_PROTO = invertEnumMap(PERMISSION_TO_PROTO);

/** A share row as the contract's Share. */
export function shareToProto(row: shares.ShareRow): MessageInitShape<typeof ShareSchema> {
  return {
    id: row.id,
    entityId: row.entity_id,
    grantee: row.grantee_user_id === null ? { case: "allTenantMembers", value: true } : { case: "userId", value: row.grantee_user_id },
    permission: PERMISSION_TO_PROTO[row.permission],
    expireTime: row.expires_at ? timestampFromDb(row.expires_at) : undefined,
    granterId: principalName(row.created_by, row.created_by_api_key_id),
    createTime: timestampFromDb(row.created_at),
    updateTime: timestampFromDb(row.updated_at),
    expired: row.expired,
  };
}

/** ContentService shares: GrantShare, ListShares, RevokeShare (admin on the entity). */
export function shareHandlers(deps: ServiceDeps<ContentConfig>): ServiceHandlers<typeof ContentService> {
  const db = deps.db;
  return {
    grantShare: async (request, ctx) => {
      // The proto rules guarantee a grantee, a defined permission and a future expiry.
      const s = request.share!;
      const row = await shares.grantShare(
        db,
        callerOf(ctx),
        {
          entityId: request.entityId,
          granteeUserId: s.grantee.case === "userId" ? s.grantee.value : null,
          permission: PERMISSION_FROM_PROTO[s.permission] ?? "view",
          expiresAt: s.expireTime ? dbTimeFromTimestamp(s.expireTime, "share.expire_time") : null,
        },
        actorOf(ctx),
      );
      return shareToProto(row);
    },
    listShares: async (request, ctx) => {
      const page = await shares.listShares(db, callerOf(ctx), {
        entityId: request.entityId,
        showExpired: request.showExpired,
        pageSize: request.pageSize,
        pageToken: request.pageToken,
      });
      return { shares: page.shares.map(shareToProto), nextPageToken: page.nextPageToken };
    },
    revokeShare: async (request, ctx) => {
      await shares.revokeShare(db, callerOf(ctx), request.entityId, request.shareId, actorOf(ctx));
      return {};
    },
  };
}
