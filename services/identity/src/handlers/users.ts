import type { MessageInitShape } from "@bufbuild/protobuf";
import { actorOf, callerOf, InvalidArgumentError, invertEnumMap, timestampFromDb, type ServiceDeps, type ServiceHandlers } from "@promptcraft/platform";
import type { IdentityService } from "@promptcraft/proto/promptcraft/identity/v1/identity_service_pb";
import { Role, UserState, type UserSchema } from "@promptcraft/proto/promptcraft/identity/v1/resources_pb";
import type { IdentityConfig } from "../config.js";
import * as users from "../domain/users.js";
import { ROLE_FROM_PROTO, ROLE_TO_PROTO } from "./roles.js";

const STATE_TO_PROTO: Record<users.UserStatus, UserState> = {
  active: UserState.ACTIVE,
  invited: UserState.INVITED,
  deactivated: UserState.DEACTIVATED,
};
const STATE_FROM_PROTO = invertEnumMap(STATE_TO_PROTO);

/** A role of the contract (validated as defined and not unspecified by the proto rules). */
function roleOf(role: Role): users.UserRole {
  return ROLE_FROM_PROTO[role] ?? "viewer";
}

/** A user row as the contract's User. */
export function userToProto({ user, purgeTime }: users.UserView): MessageInitShape<typeof UserSchema> {
  return {
    id: user.id,
    tenantId: user.tenant_id,
    email: user.email,
    displayName: user.display_name,
    role: ROLE_TO_PROTO[user.role],
    state: STATE_TO_PROTO[user.status],
    hasPassword: user.has_password,
    createTime: timestampFromDb(user.created_at),
    updateTime: timestampFromDb(user.updated_at),
    lastLoginTime: user.last_login_at ? timestampFromDb(user.last_login_at) : undefined,
    // No column of its own: a deactivated user's last change is their deactivation.
    deactivateTime: user.status === "deactivated" ? timestampFromDb(user.updated_at) : undefined,
    deleteTime: user.deleted_at ? timestampFromDb(user.deleted_at) : undefined,
    purgeTime: purgeTime ? timestampFromDb(purgeTime) : undefined,
    etag: user.row_version,
  };
}

/**
 * IdentityService: users (CreateUser, GetUser, ListUsers, UpdateUser, DeactivateUser,
 * ReactivateUser, DeleteUser, UndeleteUser). Any member reads; writes need admin (owner for
 * owners), except renaming oneself.
 */
export function userHandlers(deps: ServiceDeps<IdentityConfig>): ServiceHandlers<typeof IdentityService> {
  const db = deps.db;
  return {
    createUser: async (request, ctx) => {
      const u = request.user!;
      const created = await users.createUser(
        db,
        callerOf(ctx),
        { email: u.email, displayName: u.displayName, role: roleOf(u.role), password: request.password, requestId: request.requestId },
        actorOf(ctx),
      );
      return { user: userToProto(created), invitationToken: created.invitationToken };
    },
    getUser: async (request, ctx) => userToProto(await users.getUser(db, callerOf(ctx), request.userId)),
    listUsers: async (request, ctx) => {
      const page = await users.listUsers(db, callerOf(ctx), {
        pageSize: request.pageSize,
        pageToken: request.pageToken,
        roles: request.roles.map(roleOf),
        statuses: request.states.map((s) => STATE_FROM_PROTO[s] ?? "active"),
        emailPrefix: request.emailPrefix,
        showDeleted: request.showDeleted,
      });
      return { users: page.users.map(userToProto), nextPageToken: page.nextPageToken };
    },
    updateUser: async (request, ctx) => {
      const u = request.user!;
      const paths = new Set((request.updateMask?.paths ?? []).flatMap((p) => (p === "*" ? ["display_name", "role"] : [p])));
      const changes: { displayName?: string; role?: users.UserRole } = {};
      if (paths.has("display_name")) {
        // A cleared display name falls back to the email's local part, like on create.
        changes.displayName = u.displayName;
      }
      if (paths.has("role")) {
        if (u.role === Role.UNSPECIFIED) {
          throw new InvalidArgumentError({ field: "user.role", description: "role is required when the update mask names it" });
        }
        changes.role = roleOf(u.role);
      }
      return userToProto(await users.updateUser(db, callerOf(ctx), u.id, u.etag, changes, actorOf(ctx)));
    },
    deactivateUser: async (request, ctx) =>
      userToProto(await users.deactivateUser(db, callerOf(ctx), request.userId, request.etag, actorOf(ctx))),
    reactivateUser: async (request, ctx) =>
      userToProto(await users.reactivateUser(db, callerOf(ctx), request.userId, request.etag, actorOf(ctx))),
    deleteUser: async (request, ctx) => userToProto(await users.deleteUser(db, callerOf(ctx), request.userId, request.etag, actorOf(ctx))),
    undeleteUser: async (request, ctx) => userToProto(await users.undeleteUser(db, callerOf(ctx), request.userId, actorOf(ctx))),
  };
}
