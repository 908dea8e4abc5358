import { randomUUID } from "node:crypto";
import { appendEvents, DbTime, withTenant, type AuditEvent, type Knex } from "@promptcraft/db";
import {
  AlreadyExistsError,
  checkEtag,
  CURSOR_TEXT,
  CURSOR_UUID,
  decodePageCursor,
  FailedPreconditionError,
  NotFoundError,
  pageOf,
  pageSizeOf,
  PermissionDeniedError,
  ResourceExhaustedError,
  roleAtLeast,
  type Actor,
  type AuthContext,
} from "@promptcraft/platform";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import * as store from "../store/users.js";
import { findTenant } from "../store/tenants.js";
import { derivedUuid } from "./request-ids.js";
import { checkPasswordPolicy, hashPassword } from "./passwords.js";
import { issueInvitation } from "./invitations.js";

/**
 * Users of the caller's tenant. Rules: admins manage viewers, editors and admins; only owners
 * manage owners (create, promote, demote, deactivate, delete); a tenant always keeps one active
 * owner (LAST_OWNER); soft-deleted users refuse changes (RESOURCE_DELETED) until undeleted.
 */

export type UserRow = store.UserRow;
export type UserRole = store.UserRole;
export type UserStatus = store.UserStatus;

/** The caller as the rules see it. */
export type Caller = Pick<AuthContext, "tenantId" | "userId" | "role"> & { readonly signal?: AbortSignal };

const DAY_MS = 86_400_000;
/** `soft_delete_retention` when the tenant's settings leave it unset. */
export const DEFAULT_SOFT_DELETE_RETENTION_MS = 30 * DAY_MS;

/** The caller's transaction settings, stopped with the caller's call (platform `callerOf` carries its signal). */
function scopeOf(caller: Caller) {
  return { service: "identity" as const, tenantId: caller.tenantId, userId: caller.userId ?? null, signal: caller.signal };
}

function forbidden(required: "admin" | "owner", what: string): PermissionDeniedError {
  return new PermissionDeniedError(`${what} needs the ${required} role or higher`, {
    reason: ErrorReason.PERMISSION_INSUFFICIENT,
    metadata: { required_role: required },
  });
}

/** PERMISSION_DENIED unless the caller may manage `target` (admin; owner for owners). */
function requireManager(caller: Caller, targetRole: UserRole, what: string): void {
  if (!roleAtLeast(caller.role, "admin")) throw forbidden("admin", what);
  if (targetRole === "owner" && caller.role !== "owner") throw forbidden("owner", what);
}

const notFound = () => new NotFoundError("user not found");

function deleted(user: UserRow, purgeTime: Date): FailedPreconditionError {
  return new FailedPreconditionError("the user is deleted; undelete them first", {
    reason: ErrorReason.RESOURCE_DELETED,
    metadata: { delete_time: user.deleted_at!.toISOString(), purge_time: purgeTime.toISOString() },
  });
}

function lastOwner(): FailedPreconditionError {
  return new FailedPreconditionError("a tenant must keep at least one active owner", { reason: ErrorReason.LAST_OWNER });
}

/** Parses a protobuf JSON duration (`"2592000s"`). */
function durationMs(value: unknown): number | undefined {
  if (typeof value !== "string") return undefined;
  const m = /^(\d+)(\.\d+)?s$/.exec(value);
  return m ? Math.round(Number(`${m[1]}${m[2] ?? ""}`) * 1000) : undefined;
}

/** The tenant's soft-delete retention. */
async function retentionMs(trx: Knex.Transaction, tenantId: string): Promise<number> {
  const tenant = await findTenant(trx, tenantId);
  return durationMs(tenant?.settings?.soft_delete_retention) ?? DEFAULT_SOFT_DELETE_RETENTION_MS;
}

/** A user with the time they may be purged (delete time + retention), when deleted. */
export interface UserView {
  user: UserRow;
  purgeTime: Date | undefined;
}

function view(user: UserRow, retention: number): UserView {
  const deleted = user.deleted_at;
  if (!deleted) return { user, purgeTime: undefined };
  // Keeps the delete time's microseconds, so that purge_time − delete_time is exactly the retention.
  const micros = deleted instanceof DbTime ? deleted.microsOfMillisecond : 0;
  return { user, purgeTime: new DbTime(deleted.getTime() + retention, micros) };
}

function event(user: UserRow, eventType: string, payload: Record<string, unknown>, actor: Actor): AuditEvent {
  return {
    tenantId: user.tenant_id,
    aggregateType: "user",
    aggregateId: user.id,
    aggregateVersion: BigInt(user.row_version),
    eventType,
    payload,
    ...actor,
  };
}

export interface NewUser {
  email: string;
  displayName: string;
  role: UserRole;
  password: string;
  requestId: string;
}

/**
 * Creates a user: active with a password; invited without, with a one-time invitation token.
 * Idempotent with a request id: a retry returns the first call's user. The token of the first call
 * is not kept in clear, so a retry while the user is still invited issues a new one and closes the
 * old (the client that lost the first response gets a working token; only one is ever valid).
 */
export async function createUser(db: Knex, caller: Caller, input: NewUser, actor: Actor): Promise<UserView & { invitationToken: string }> {
  requireManager(caller, input.role, "creating this user");
  const id = input.requestId ? derivedUuid("user", caller.tenantId, input.requestId) : randomUUID();
  checkPasswordPolicy(input.password, input.email, "password");
  const passwordHash = input.password ? await hashPassword(input.password) : null;
  try {
    return await withTenant(db, scopeOf(caller), async (trx) => {
      // The tenant row lock serialises creations, so the quota holds under concurrency.
      const tenant = await findTenant(trx, caller.tenantId, true);
      if (!tenant) throw notFound();
      const retention = durationMs(tenant.settings.soft_delete_retention) ?? DEFAULT_SOFT_DELETE_RETENTION_MS;
      const existing = input.requestId ? await store.findUser(trx, caller.tenantId, id) : undefined;
      if (existing) {
        if (existing.email.toLowerCase() !== input.email.toLowerCase() || existing.role !== input.role) {
          throw new AlreadyExistsError("request_id was already used for a different request", { reason: ErrorReason.REQUEST_ID_REUSED });
        }
        const reinvite = input.password === "" && existing.status === "invited" && !existing.deleted_at;
        return { ...view(existing, retention), invitationToken: reinvite ? (await issueInvitation(trx, existing, actor)).token : "" };
      }
      const maxUsers = tenant.quotas.max_users;
      if (typeof maxUsers === "number" && (await store.countLiveUsers(trx, caller.tenantId)) >= maxUsers) {
        throw new ResourceExhaustedError(`the tenant has reached its limit of ${maxUsers} users`, {
          reason: ErrorReason.QUOTA_EXCEEDED,
          metadata: { metric: "max_users", limit: String(maxUsers) },
        });
      }
      const user = (await store.insertUser(trx, {
        tenantId: caller.tenantId,
        id,
        email: input.email,
        displayName: input.displayName || input.email.split("@")[0]!,
        role: input.role,
        passwordHash,
      }))!;
      await appendEvents(trx, [event(user, "identity.user.created", { email: user.email, role: user.role, status: user.status }, actor)]);
      const invitationToken = passwordHash === null ? (await issueInvitation(trx, user, actor)).token : "";
      return { ...view(user, retention), invitationToken };
    });
  } catch (err) {
    const e = err as { code?: unknown; constraint?: unknown };
    if (e?.code === "23505" && e.constraint === "app_user_email_key") {
      throw new AlreadyExistsError("a user with this email exists in the tenant");
    }
    throw err;
  }
}

/** A user of the caller's tenant, deleted ones included. Any member. */
export async function getUser(db: Knex, caller: Caller, id: string): Promise<UserView> {
  return withTenant(db, scopeOf(caller), async (trx) => {
    const user = await store.findUser(trx, caller.tenantId, id);
    if (!user) throw notFound();
    return view(user, await retentionMs(trx, caller.tenantId));
  });
}

export interface UserQuery {
  pageSize: number;
  pageToken: string;
  roles: UserRole[];
  statuses: UserStatus[];
  emailPrefix: string;
  showDeleted: boolean;
}

/** A page of users ordered by email (case-insensitively), then id. Any member. */
export async function listUsers(db: Knex, caller: Caller, q: UserQuery): Promise<{ users: UserView[]; nextPageToken: string }> {
  const params = { t: caller.tenantId, r: [...q.roles].sort(), s: [...q.statuses].sort(), e: q.emailPrefix.toLowerCase(), d: q.showDeleted };
  const after = decodePageCursor(q.pageToken, params, { email: CURSOR_TEXT, id: CURSOR_UUID });
  const limit = pageSizeOf(q.pageSize);
  return withTenant(db, scopeOf(caller), async (trx) => {
    const rows = await store.listUsers(trx, caller.tenantId, {
      roles: q.roles,
      statuses: q.statuses,
      emailPrefix: q.emailPrefix,
      showDeleted: q.showDeleted,
      after,
      limit: limit + 1,
    });
    const retention = await retentionMs(trx, caller.tenantId);
    const { page, nextPageToken } = pageOf(rows, limit, params, (last) => ({ email: last.sort_key, id: last.id }));
    return { users: page.map((u) => view(u, retention)), nextPageToken };
  });
}

/**
 * Loads and locks the target, checks etag and deletion, runs `change`, which returns the
 * fields to write and the events' payloads (or nothing for no change).
 */
async function mutate(
  db: Knex,
  caller: Caller,
  id: string,
  etag: string,
  change: (trx: Knex.Transaction, user: UserRow, retention: number) => Promise<UserRow | undefined>,
): Promise<UserView> {
  return withTenant(db, scopeOf(caller), async (trx) => {
    const retention = await retentionMs(trx, caller.tenantId);
    const user = await store.findUser(trx, caller.tenantId, id, true);
    if (!user) throw notFound();
    checkEtag(etag, user.row_version, "user");
    const updated = await change(trx, user, retention);
    return view(updated ?? user, retention);
  });
}

/** OK if another active owner remains once `user` stops being one (locks the owners first). */
async function ensureAnotherOwner(trx: Knex.Transaction, user: UserRow): Promise<void> {
  if (user.role !== "owner" || user.status !== "active" || user.deleted_at) return;
  await store.lockOwners(trx, user.tenant_id);
  if ((await store.countOtherActiveOwners(trx, user.tenant_id, user.id)) === 0) throw lastOwner();
}

/**
 * Changes display name and/or role. Users may rename themselves; renaming others and any role
 * change need admin (owner when the user is or becomes an owner).
 */
export async function updateUser(
  db: Knex,
  caller: Caller,
  id: string,
  etag: string,
  changes: { displayName?: string; role?: UserRole },
  actor: Actor,
): Promise<UserView> {
  return mutate(db, caller, id, etag, async (trx, user, retention) => {
    const self = caller.userId === user.id;
    if (changes.displayName !== undefined && !self) requireManager(caller, user.role, "changing another user");
    if (changes.role !== undefined && changes.role !== user.role) {
      requireManager(caller, user.role, "changing this user's role");
      requireManager(caller, changes.role, "granting this role");
    }
    if (user.deleted_at) throw deleted(user, new Date(user.deleted_at.getTime() + retention));
    const diff: { displayName?: string; role?: UserRole } = {};
    const name = changes.displayName === "" ? user.email.split("@")[0]! : changes.displayName;
    if (name !== undefined && name !== user.display_name) diff.displayName = name;
    if (changes.role !== undefined && changes.role !== user.role) diff.role = changes.role;
    if (diff.displayName === undefined && diff.role === undefined) return undefined;
    if (diff.role !== undefined) await ensureAnotherOwner(trx, user);
    const updated = await store.updateUser(trx, user.tenant_id, user.id, diff);
    const events: AuditEvent[] = [];
    if (diff.displayName !== undefined) events.push(event(updated, "identity.user.updated", { display_name: diff.displayName }, actor));
    if (diff.role !== undefined) events.push(event(updated, "identity.user.role_changed", { from: user.role, to: diff.role }, actor));
    await appendEvents(trx, events);
    return updated;
  });
}

/** Deactivates a user and revokes their sessions. Idempotent. */
export async function deactivateUser(db: Knex, caller: Caller, id: string, etag: string, actor: Actor): Promise<UserView> {
  return mutate(db, caller, id, etag, async (trx, user, retention) => {
    requireManager(caller, user.role, "deactivating this user");
    if (user.deleted_at) throw deleted(user, new Date(user.deleted_at.getTime() + retention));
    if (user.status === "deactivated") return undefined;
    await ensureAnotherOwner(trx, user);
    const updated = await store.updateUser(trx, user.tenant_id, user.id, { status: "deactivated" });
    const sessions = await store.revokeUserSessions(trx, user.tenant_id, user.id, "user_disabled");
    await appendEvents(trx, [event(updated, "identity.user.deactivated", { previous_status: user.status, sessions_revoked: sessions }, actor)]);
    return updated;
  });
}

/** Reactivates a deactivated user (invited again if they never set a password). Idempotent. */
export async function reactivateUser(db: Knex, caller: Caller, id: string, etag: string, actor: Actor): Promise<UserView> {
  return mutate(db, caller, id, etag, async (trx, user, retention) => {
    requireManager(caller, user.role, "reactivating this user");
    if (user.deleted_at) throw deleted(user, new Date(user.deleted_at.getTime() + retention));
    if (user.status !== "deactivated") return undefined;
    const updated = await store.updateUser(trx, user.tenant_id, user.id, { status: user.has_password ? "active" : "invited" });
    await appendEvents(trx, [event(updated, "identity.user.reactivated", { status: updated.status }, actor)]);
    return updated;
  });
}

/** Soft-deletes a user, revoking their sessions and the API keys they created. */
export async function deleteUser(db: Knex, caller: Caller, id: string, etag: string, actor: Actor): Promise<UserView> {
  return mutate(db, caller, id, etag, async (trx, user, retention) => {
    requireManager(caller, user.role, "deleting this user");
    if (user.deleted_at) throw deleted(user, new Date(user.deleted_at.getTime() + retention));
    await ensureAnotherOwner(trx, user);
    const updated = await store.updateUser(trx, user.tenant_id, user.id, { deleted: true });
    const sessions = await store.revokeUserSessions(trx, user.tenant_id, user.id, "user_disabled");
    const apiKeys = await store.revokeUserApiKeys(trx, user.tenant_id, user.id);
    await appendEvents(trx, [event(updated, "identity.user.deleted", { sessions_revoked: sessions, api_keys_revoked: apiKeys }, actor)]);
    return updated;
  });
}

/** Restores a soft-deleted user before their purge time; ALREADY_EXISTS if their email was taken meanwhile. */
export async function undeleteUser(db: Knex, caller: Caller, id: string, actor: Actor): Promise<UserView> {
  try {
    return await mutate(db, caller, id, "", async (trx, user, retention) => {
      requireManager(caller, user.role, "restoring this user");
      if (!user.deleted_at) {
        throw new FailedPreconditionError("the user is not deleted", { reason: ErrorReason.RESOURCE_NOT_DELETED });
      }
      if (user.deleted_at.getTime() + retention <= Date.now()) throw notFound();
      const updated = await store.updateUser(trx, user.tenant_id, user.id, { deleted: false });
      await appendEvents(trx, [event(updated, "identity.user.undeleted", {}, actor)]);
      return updated;
    });
  } catch (err) {
    const e = err as { code?: unknown; constraint?: unknown };
    if (e?.code === "23505" && e.constraint === "app_user_email_key") {
      throw new AlreadyExistsError("another user has taken this email meanwhile");
    }
    throw err;
  }
}
