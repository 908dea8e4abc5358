import { apiKeyIdOf, NotFoundError, PermissionDeniedError, roleAtLeast, roleGrants as platformRoleGrants, type AuthContext, type NamedPrincipal, type RoleGrants } from "@promptcraft/platform";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";

/**
 * The content access model (brief §6; docs in the service README). A caller's effective
 * permission on one entity is the highest of:
 * - tenant role owner or admin → admin on every entity of the tenant;
 * - owning the entity (the user or the API key that created it) → admin;
 * - the current version's visibility `tenant` → view for every member, edit for editors and up;
 * - a live share to the caller or to the whole tenant → its permission (an API key gets only the
 *   tenant-wide shares: shares name users);
 * capped at view for the viewer role (viewers never write).
 *
 * The rule is evaluated in SQL (store/access.ts) for single entities and lists alike, so a list
 * shows exactly what a get would allow; this module holds the caller-dependent constants the SQL
 * is built from and what the outcome means (no view → NOT_FOUND; too little → PERMISSION_DENIED).
 */

/** Levels of access, each including the ones below. */
export type PermissionLevel = "none" | "view" | "edit" | "admin";

/** The levels by rank (the rank is what the SQL computes). */
export const PERMISSION_LEVELS: readonly PermissionLevel[] = ["none", "view", "edit", "admin"];

/** A level's rank: none 0, view 1, edit 2, admin 3. */
export function permissionRank(level: PermissionLevel): number {
  return PERMISSION_LEVELS.indexOf(level);
}

/** The level of a rank computed in SQL. */
export function permissionOfRank(rank: number): PermissionLevel {
  return PERMISSION_LEVELS[Math.max(0, Math.min(3, rank))]!;
}

/**
 * The caller as the access rules see it: a user, or an API key acting for no user (`kind`
 * `api_key`, `credentialId` its id; a key owns the entities it creates, like a user), with the
 * call's abort signal (platform `callerOf`): every transaction made for the caller stops with the call.
 */
export type Caller = Pick<AuthContext, "tenantId" | "userId" | "role"> &
  Partial<Pick<AuthContext, "kind" | "credentialId">> & { readonly signal?: AbortSignal };

/** Who owns an entity, writes a version, moves a label or grants a share: a user or an API key. */
export type Principal = NamedPrincipal;


/**
 * Who the caller writes as: their user, or their API key (issue 9: keys act within their role and
 * are recorded as themselves). PERMISSION_DENIED for a credential that is neither (none today).
 */
export function principalOf(caller: Caller): Principal {
  if (caller.userId !== undefined) return { kind: "user", id: caller.userId };
  const key = apiKeyIdOf(caller);
  if (key !== null) return { kind: "api_key", id: key };
  throw new PermissionDeniedError("this credential names neither a user nor an API key", {
    reason: ErrorReason.PERMISSION_INSUFFICIENT,
    metadata: { required: "user_or_api_key" },
  });
}

/** The principal's two columns (`<user column>`, `<key column>`): exactly one is set. */
export function principalColumns(p: Principal): [userId: string | null, apiKeyId: string | null] {
  return p.kind === "user" ? [p.id, null] : [null, p.id];
}

/** The role-dependent parts of the rule, as ranks (the platform's, which the shared SQL expression uses). */
export function roleGrants(caller: Caller): RoleGrants {
  return platformRoleGrants(caller.role);
}

/** NOT_FOUND for an entity that does not exist or that the caller may not see: the same error. */
export function entityNotFound(): NotFoundError {
  return new NotFoundError("entity not found", { metadata: { resource_type: "entity" } });
}

/**
 * Passes when `permission` reaches `needed`. Without view the entity does not exist for the
 * caller (NOT_FOUND); with view but less than needed, PERMISSION_DENIED naming what is missing.
 */
export function requirePermission(permission: PermissionLevel, needed: Exclude<PermissionLevel, "none">, what: string): void {
  if (permission === "none") throw entityNotFound();
  if (permissionRank(permission) < permissionRank(needed)) {
    throw new PermissionDeniedError(`${what} needs ${needed} permission on the entity`, {
      reason: ErrorReason.PERMISSION_INSUFFICIENT,
      metadata: { required_permission: needed, permission },
    });
  }
}

/** PERMISSION_DENIED unless the caller's tenant role is at least `minimum` (create: editor; purge: admin). */
export function requireTenantRole(caller: Caller, minimum: "editor" | "admin", what: string): void {
  if (!roleAtLeast(caller.role, minimum)) {
    throw new PermissionDeniedError(`${what} needs the ${minimum} role or higher`, {
      reason: ErrorReason.PERMISSION_INSUFFICIENT,
      metadata: { required_role: minimum },
    });
  }
}

/**
 * The caller's user id, for what belongs to one user (favorites): a credential that acts for no
 * user (an API key) gets PERMISSION_DENIED.
 */
export function requireUser(caller: Caller, what: string): string {
  if (caller.userId === undefined) {
    throw new PermissionDeniedError(`${what} belong to a user; this credential (an API key) acts for no user`, {
      reason: ErrorReason.PERMISSION_INSUFFICIENT,
      metadata: { required: "user" },
    });
  }
  return caller.userId;
}
