import { createHash, randomBytes, randomUUID } from "node:crypto";
import { appendEvents, withServiceRole, withTenant, type Knex } from "@promptcraft/db";
import {
  CURSOR_TIMESTAMP,
  CURSOR_UUID,
  decodePageCursor,
  FailedPreconditionError,
  NotFoundError,
  pageOf,
  pageSizeOf,
  requireCallerRole,
  roleAtLeast,
  UnauthenticatedError,
  type Actor,
  type AuthContext,
} from "@promptcraft/platform";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import * as store from "../store/sessions.js";
import { findTenant } from "../store/tenants.js";
import { findUser, recordLogin, type UserRole, type UserRow } from "../store/users.js";
import { issueAccessToken, type AccessTokenSettings } from "./access-tokens.js";
import type { KeyRing } from "./signing-keys.js";

/**
 * Sessions: a session is a family of refresh tokens (`session.family_id`), opened by a login
 * (password, OIDC, accepted invitation), rotated on every refresh (a spent token presented again
 * revokes the family), ended by logout, revocation or a password change. Access tokens are issued
 * for a session and name it (`sid`).
 */

export type FamilyRow = store.FamilyRow;
export type SessionAuthMethod = store.SessionAuthMethod;

/** Prefix of refresh tokens (recognisable in logs and secret scanners). */
export const REFRESH_TOKEN_PREFIX = "pcr_";

/** A new opaque refresh token: 32 random bytes, base64url, prefixed. */
export function newRefreshToken(): string {
  return REFRESH_TOKEN_PREFIX + randomBytes(32).toString("base64url");
}

/** How a refresh token is stored and looked up: SHA-256, hex (it is high-entropy, so a fast hash suffices). */
export function hashRefreshToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/** `session.revoked_reason` values. */
export type RevokeReason = "logout" | "revoked" | "reuse_detected" | "password_changed" | "user_disabled";

/** When a token issued at `now` expires: the idle timeout, capped by the session's absolute expiry. */
export function refreshTokenExpiry(now: Date, idleTtlS: number, absoluteExpiresAt: Date): Date {
  return new Date(Math.min(now.getTime() + idleTtlS * 1000, absoluteExpiresAt.getTime()));
}

/** Whether the tenant's settings (`TenantSettings` as stored) allow single sign-on only. */
export function passwordLoginDisabled(settings: Record<string, unknown> | undefined): boolean {
  return settings?.password_login_disabled === true;
}

/** Lifetimes of a new session (from the service's config). */
export interface SessionLifetimes {
  /** Absolute lifetime, however often it is refreshed. */
  maxLifetimeS: number;
  /** A refresh token unused this long expires. */
  refreshIdleTtlS: number;
}

/** What issuing sessions and their tokens needs (built once from the config in the handlers). */
export interface SessionSettings {
  /** Signs access tokens. */
  keys: KeyRing;
  accessToken: AccessTokenSettings;
  lifetimes: SessionLifetimes;
}

/** Where a call comes from, for sessions, throttling and the audit log. */
export interface ClientInfo {
  /** `user-agent`, trimmed to what the table keeps. */
  userAgent: string | null;
  /** The client's IP address. */
  clientAddress: string | null;
  requestId: string;
}

/** Who logs in and how. */
export interface SessionStart {
  tenantId: string;
  userId: string;
  authMethod: SessionAuthMethod;
  /** The provider of an OIDC login. */
  oidcProviderId?: string;
}

/** A session just opened: its id, its first refresh token, and the user as it is now. */
export interface OpenedSession {
  sessionId: string;
  refreshToken: string;
  refreshExpiresAt: Date;
  user: UserRow;
}

/** The tokens of a session: a new access token and the session's current refresh token. */
export interface SessionTokens {
  sessionId: string;
  accessToken: string;
  accessTokenExpiresAt: Date;
  refreshToken: string;
  refreshTokenExpiresAt: Date;
}

/** What a login answers: the new session's tokens and the user. */
export interface LoggedIn {
  tokens: SessionTokens;
  user: UserRow;
}

/**
 * Opens a session for a user whose credentials were just proven (password, OIDC, invitation):
 * inserts the first refresh token of a new family, records the login on the user and appends
 * `identity.login.succeeded`, all in the caller's transaction. The caller has checked the tenant and that
 * the user may log in.
 */
export async function openSession(trx: Knex.Transaction, lifetimes: SessionLifetimes, start: SessionStart, client: ClientInfo): Promise<OpenedSession> {
  const now = new Date();
  const sessionId = randomUUID();
  const refreshToken = newRefreshToken();
  const absoluteExpiresAt = new Date(now.getTime() + lifetimes.maxLifetimeS * 1000);
  const refreshExpiresAt = refreshTokenExpiry(now, lifetimes.refreshIdleTtlS, absoluteExpiresAt);
  await store.insertSession(trx, {
    tenantId: start.tenantId,
    id: sessionId,
    familyId: sessionId,
    generation: 0,
    userId: start.userId,
    tokenHash: hashRefreshToken(refreshToken),
    authMethod: start.authMethod,
    oidcProviderId: start.oidcProviderId ?? null,
    expiresAt: refreshExpiresAt,
    absoluteExpiresAt,
    userAgent: client.userAgent,
    clientIp: client.clientAddress,
    createdAt: now,
  });
  const user = await recordLogin(trx, start.tenantId, start.userId);
  await appendEvents(trx, [
    {
      tenantId: start.tenantId,
      aggregateType: "user",
      aggregateId: start.userId,
      eventType: "identity.login.succeeded",
      payload: {
        session_id: sessionId,
        client_address: client.clientAddress,
        method: start.authMethod,
        ...(start.oidcProviderId ? { oidc_provider_id: start.oidcProviderId } : {}),
      },
      actorType: "user",
      actorId: start.userId,
      requestId: client.requestId,
    },
  ]);
  return { sessionId, refreshToken, refreshExpiresAt, user };
}

/** A new access token for the session, with its current refresh token. */
async function sessionTokens(
  settings: SessionSettings,
  s: { tenantId: string; userId: string; role: UserRole; sessionId: string; refreshToken: string; refreshExpiresAt: Date },
): Promise<SessionTokens> {
  const access = await issueAccessToken(settings.keys, settings.accessToken, { tenantId: s.tenantId, userId: s.userId, role: s.role, sessionId: s.sessionId });
  return {
    sessionId: s.sessionId,
    accessToken: access.token,
    accessTokenExpiresAt: access.expiresAt,
    refreshToken: s.refreshToken,
    refreshTokenExpiresAt: s.refreshExpiresAt,
  };
}

/** The answer to a login that opened `session` (after its transaction committed). */
export async function loggedIn(settings: SessionSettings, session: OpenedSession): Promise<LoggedIn> {
  const { user } = session;
  return { tokens: await sessionTokens(settings, { tenantId: user.tenant_id, userId: user.id, role: user.role, ...session }), user };
}

const refreshInvalid = () => new UnauthenticatedError("refresh token invalid or expired", { reason: ErrorReason.REFRESH_TOKEN_INVALID });

/**
 * RefreshToken: rotates the presented refresh token (it is spent, generation + 1 is issued) and
 * issues a new access token. A spent token presented again ends the session (REFRESH_TOKEN_REUSED);
 * a revoked or expired session, a suspended tenant or a user no longer active is UNAUTHENTICATED
 * (the last also ends the session).
 */
export async function refreshSession(db: Knex, settings: SessionSettings, presented: string, client: ClientInfo): Promise<SessionTokens> {
  const found = await withServiceRole(db, "identity", (trx) => store.findRefreshToken(trx, hashRefreshToken(presented)));
  if (!found) throw refreshInvalid();
  const refreshToken = newRefreshToken();
  // Refusals that revoke something return their error so that the revocation commits; others throw.
  const outcome = await withTenant(db, { service: "identity", tenantId: found.tenant_id, userId: found.user_id }, async (trx) => {
    const row = await store.lockSessionRow(trx, found.tenant_id, found.id);
    if (!row) throw refreshInvalid();
    if (row.revoked_at) throw new UnauthenticatedError("the session was revoked", { reason: ErrorReason.CREDENTIALS_REVOKED });
    if (row.rotated_at) {
      // A spent token presented again: whoever holds it may have stolen it. End the session.
      await store.revokeFamily(trx, row.tenant_id, row.family_id, "reuse_detected");
      await appendEvents(trx, [
        {
          tenantId: row.tenant_id,
          aggregateType: "session",
          aggregateId: row.family_id,
          eventType: "identity.session.refresh_token_reused",
          payload: { user_id: row.user_id, generation: row.generation, client_address: client.clientAddress },
          actorType: "system",
          requestId: client.requestId,
        },
      ]);
      return { error: new UnauthenticatedError("refresh token already used; the session is revoked", { reason: ErrorReason.REFRESH_TOKEN_REUSED }) };
    }
    const now = new Date();
    if (new Date(row.expires_at) <= now || new Date(row.absolute_expires_at) <= now) throw refreshInvalid();
    const tenant = await findTenant(trx, row.tenant_id);
    if (tenant?.status !== "active") throw new UnauthenticatedError("the tenant is suspended", { reason: ErrorReason.TENANT_SUSPENDED });
    const user = await findUser(trx, row.tenant_id, row.user_id);
    if (!user || user.status !== "active" || user.deleted_at) {
      await store.revokeFamily(trx, row.tenant_id, row.family_id, "user_disabled");
      return { error: new UnauthenticatedError("the user is no longer active", { reason: ErrorReason.CREDENTIALS_REVOKED }) };
    }
    const absoluteExpiresAt = new Date(row.absolute_expires_at);
    const expiresAt = refreshTokenExpiry(now, settings.lifetimes.refreshIdleTtlS, absoluteExpiresAt);
    await store.markRotated(trx, row.tenant_id, row.id, now);
    await store.insertSession(trx, {
      tenantId: row.tenant_id,
      id: randomUUID(),
      familyId: row.family_id,
      generation: row.generation + 1,
      userId: row.user_id,
      tokenHash: hashRefreshToken(refreshToken),
      authMethod: row.auth_method,
      oidcProviderId: row.oidc_provider_id,
      expiresAt,
      absoluteExpiresAt,
      userAgent: client.userAgent ?? row.user_agent,
      clientIp: client.clientAddress ?? row.client_ip,
      createdAt: now,
    });
    return { ok: { tenantId: row.tenant_id, userId: row.user_id, role: user.role, sessionId: row.family_id, refreshExpiresAt: expiresAt } };
  });
  if ("error" in outcome) throw outcome.error as Error;
  return sessionTokens(settings, { ...outcome.ok, refreshToken });
}

/** Ends a session (every unrevoked token of the family) and appends its event, if it was live. */
export async function endSession(trx: Knex.Transaction, session: { tenantId: string; familyId: string; userId: string }, reason: RevokeReason, actor: Actor): Promise<void> {
  const changed = await store.revokeFamily(trx, session.tenantId, session.familyId, reason);
  if (changed === 0) return;
  await appendEvents(trx, [
    {
      tenantId: session.tenantId,
      aggregateType: "session",
      aggregateId: session.familyId,
      eventType: reason === "logout" ? "identity.session.logged_out" : "identity.session.revoked",
      payload: { user_id: session.userId, reason },
      ...actor,
    },
  ]);
}

/** The session an access token names (checked by the caller: genuine and unexpired). */
export interface TokenSession {
  tenantId: string;
  userId: string;
  sessionId: string;
}

/**
 * Logout: ends the session of a refresh token (whoever holds it may), or the session of the
 * caller's access token. Idempotent: an unknown token or an ended session is no error.
 */
export async function logout(db: Knex, who: { refreshToken: string } | TokenSession, requestId: string): Promise<void> {
  if ("refreshToken" in who) {
    const found = await withServiceRole(db, "identity", (trx) => store.findRefreshToken(trx, hashRefreshToken(who.refreshToken)));
    if (!found) return;
    const actor: Actor = { actorType: "user", actorId: found.user_id, requestId };
    await withTenant(db, { service: "identity", tenantId: found.tenant_id, userId: found.user_id }, (trx) =>
      endSession(trx, { tenantId: found.tenant_id, familyId: found.family_id, userId: found.user_id }, "logout", actor),
    );
    return;
  }
  const { tenantId, userId, sessionId } = who;
  await withTenant(db, { service: "identity", tenantId, userId }, async (trx) => {
    const family = await store.getFamily(trx, tenantId, sessionId);
    if (family && family.user_id === userId) {
      await endSession(trx, { tenantId, familyId: sessionId, userId }, "logout", { actorType: "user", actorId: userId, requestId });
    }
  });
}

/**
 * A page of a user's sessions (the caller's own when `userId` is empty), newest first; ended ones
 * only with `showInactive`. Another user's need the admin role; an API key has none of its own
 * (FAILED_PRECONDITION); a user that does not exist is NOT_FOUND.
 */
export async function listSessions(
  db: Knex,
  caller: AuthContext & { signal?: AbortSignal },
  q: { userId: string; showInactive: boolean; pageSize: number; pageToken: string },
): Promise<{ sessions: FamilyRow[]; nextPageToken: string }> {
  const userId = q.userId ? q.userId.toLowerCase() : caller.userId;
  if (!userId) throw new FailedPreconditionError("an API key has no sessions: name a user_id");
  if (userId !== caller.userId) requireCallerRole(caller, "admin");
  const params = { list: "sessions", t: caller.tenantId, u: userId, s: q.showInactive };
  const cursor = decodePageCursor(q.pageToken, params, { startedAt: CURSOR_TIMESTAMP, id: CURSOR_UUID });
  const limit = pageSizeOf(q.pageSize);
  return withTenant(db, { service: "identity", tenantId: caller.tenantId, userId: caller.userId ?? null, signal: caller.signal }, async (trx) => {
    const user = await findUser(trx, caller.tenantId, userId);
    if (!user || user.deleted_at) throw new NotFoundError(`user ${userId} not found`);
    const after = cursor && { startedAt: cursor.startedAt, familyId: cursor.id };
    const rows = await store.listFamilies(trx, caller.tenantId, userId, { includeInactive: q.showInactive, limit: limit + 1, after });
    const { page, nextPageToken } = pageOf(rows, limit, params, (last) => ({ startedAt: last.started_at.toISOString(), id: last.family_id }));
    return { sessions: page, nextPageToken };
  });
}

/** RevokeSession: ends one session, the caller's own or (admin) any of the tenant's; NOT_FOUND otherwise. */
export async function revokeSession(db: Knex, caller: AuthContext, sessionId: string, actor: Actor): Promise<FamilyRow> {
  const familyId = sessionId.toLowerCase();
  return withTenant(db, { service: "identity", tenantId: caller.tenantId, userId: caller.userId ?? null }, async (trx) => {
    const family = await store.getFamily(trx, caller.tenantId, familyId);
    const mayRevoke = family && (family.user_id === caller.userId || roleAtLeast(caller.role, "admin"));
    if (!family || !mayRevoke) throw new NotFoundError(`session ${familyId} not found`);
    await endSession(trx, { tenantId: caller.tenantId, familyId, userId: family.user_id }, "revoked", actor);
    return (await store.getFamily(trx, caller.tenantId, familyId))!;
  });
}
