import { createHash, randomBytes, randomUUID } from "node:crypto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { appendEvents, withTenant, type Knex } from "@promptcraft/db";
import { CURSOR_TIMESTAMP, CURSOR_UUID, decodePageCursor, NotFoundError, pageOf, pageSizeOf, timestampFromDb } from "@promptcraft/platform";
import type { AuthTokensSchema } from "@promptcraft/proto/promptcraft/identity/v1/resources_pb";
import { AuthMethod, SessionRevokeReason, type SessionSchema } from "@promptcraft/proto/promptcraft/identity/v1/resources_pb";
import { insertSession, listFamilies, type FamilyRow, type SessionAuthMethod } from "../store/sessions.js";
import { findUser, recordLogin, type UserRole, type UserRow } from "../store/users.js";
import { issueAccessToken } from "./access-tokens.js";
import type { KeyRing } from "./signing-keys.js";

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
export const REVOKE_REASONS = {
  logout: SessionRevokeReason.LOGOUT,
  revoked: SessionRevokeReason.REVOKED,
  reuse_detected: SessionRevokeReason.REFRESH_TOKEN_REUSED,
  password_changed: SessionRevokeReason.PASSWORD_CHANGED,
  user_disabled: SessionRevokeReason.USER_DISABLED,
} as const;
export type RevokeReason = keyof typeof REVOKE_REASONS;

const AUTH_METHODS: Record<SessionAuthMethod, AuthMethod> = {
  password: AuthMethod.PASSWORD,
  oidc: AuthMethod.OIDC,
  invitation: AuthMethod.INVITATION,
};

/** When a token issued at `now` expires: the idle timeout, capped by the session's absolute expiry. */
export function refreshTokenExpiry(now: Date, idleTtlS: number, absoluteExpiresAt: Date): Date {
  return new Date(Math.min(now.getTime() + idleTtlS * 1000, absoluteExpiresAt.getTime()));
}

/** A session family row as the contract's Session. */
export function sessionToProto(row: FamilyRow): MessageInitShape<typeof SessionSchema> {
  return {
    id: row.family_id,
    userId: row.user_id,
    authMethod: AUTH_METHODS[row.auth_method],
    oidcProviderId: row.oidc_provider_id ?? "",
    userAgent: row.user_agent ?? "",
    clientAddress: row.client_ip ?? "",
    createTime: timestampFromDb(row.started_at),
    lastRefreshTime: timestampFromDb(row.created_at),
    expireTime: timestampFromDb(row.absolute_expires_at),
    revokeTime: row.revoked_at ? timestampFromDb(row.revoked_at) : undefined,
    revokeReason: row.revoked_reason
      ? (REVOKE_REASONS[row.revoked_reason as RevokeReason] ?? SessionRevokeReason.REVOKED)
      : SessionRevokeReason.UNSPECIFIED,
  };
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

/** Who logs in, how, and from where. */
export interface SessionStart {
  tenantId: string;
  userId: string;
  authMethod: SessionAuthMethod;
  /** The provider of an OIDC login. */
  oidcProviderId?: string;
  userAgent: string | null;
  clientAddress: string | null;
  requestId: string;
}

/** A session just opened: its id, its first refresh token, and the user as it is now. */
export interface OpenedSession {
  sessionId: string;
  refreshToken: string;
  refreshExpiresAt: Date;
  user: UserRow;
}

/**
 * Opens a session for a user whose credentials were just proven (password or OIDC): inserts the
 * first refresh token of a new family, records the login on the user and appends `login.succeeded`,
 * all in the caller's transaction. The caller has checked the tenant and the user may log in.
 */
export async function openSession(trx: Knex.Transaction, lifetimes: SessionLifetimes, start: SessionStart): Promise<OpenedSession> {
  const now = new Date();
  const sessionId = randomUUID();
  const refreshToken = newRefreshToken();
  const absoluteExpiresAt = new Date(now.getTime() + lifetimes.maxLifetimeS * 1000);
  const refreshExpiresAt = refreshTokenExpiry(now, lifetimes.refreshIdleTtlS, absoluteExpiresAt);
  await insertSession(trx, {
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
    userAgent: start.userAgent,
    clientIp: start.clientAddress,
    createdAt: now,
  });
  const user = await recordLogin(trx, start.tenantId, start.userId);
  await appendEvents(trx, [
    {
      tenantId: start.tenantId,
      aggregateType: "app_user",
      aggregateId: start.userId,
      eventType: "login.succeeded",
      payload: {
        session_id: sessionId,
        client_address: start.clientAddress,
        method: start.authMethod,
        ...(start.oidcProviderId ? { oidc_provider_id: start.oidcProviderId } : {}),
      },
      actorType: "user",
      actorId: start.userId,
      requestId: start.requestId,
    },
  ]);
  return { sessionId, refreshToken, refreshExpiresAt, user };
}

/** The contract's AuthTokens: a new access token for the session plus its current refresh token. */
export async function sessionTokens(
  keys: KeyRing,
  settings: { issuer: string; ttlS: number },
  s: { tenantId: string; userId: string; role: UserRole; sessionId: string; refreshToken: string; refreshExpiresAt: Date },
): Promise<MessageInitShape<typeof AuthTokensSchema>> {
  const access = await issueAccessToken(keys, settings, { tenantId: s.tenantId, userId: s.userId, role: s.role, sessionId: s.sessionId });
  return {
    accessToken: access.token,
    tokenType: "Bearer",
    accessTokenExpireTime: timestampFromDb(access.expiresAt),
    refreshToken: s.refreshToken,
    refreshTokenExpireTime: timestampFromDb(s.refreshExpiresAt),
    sessionId: s.sessionId,
  };
}

/**
 * A page of a user's sessions, newest first; ended ones only with `showInactive`. The caller may
 * list another user's (the handler checks the role); a user that does not exist is NOT_FOUND.
 */
export async function listSessions(
  db: Knex,
  caller: { tenantId: string; userId?: string; signal?: AbortSignal },
  q: { userId: string; showInactive: boolean; pageSize: number; pageToken: string },
): Promise<{ sessions: FamilyRow[]; nextPageToken: string }> {
  const params = { list: "sessions", t: caller.tenantId, u: q.userId, s: q.showInactive };
  const cursor = decodePageCursor(q.pageToken, params, { startedAt: CURSOR_TIMESTAMP, id: CURSOR_UUID });
  const limit = pageSizeOf(q.pageSize);
  return withTenant(db, { service: "identity", tenantId: caller.tenantId, userId: caller.userId ?? null, signal: caller.signal }, async (trx) => {
    const user = await findUser(trx, caller.tenantId, q.userId);
    if (!user || user.deleted_at) throw new NotFoundError(`user ${q.userId} not found`);
    const after = cursor && { startedAt: cursor.startedAt, familyId: cursor.id };
    const rows = await listFamilies(trx, q.userId, { includeInactive: q.showInactive, limit: limit + 1, after });
    const { page, nextPageToken } = pageOf(rows, limit, params, (last) => ({ startedAt: last.started_at.toISOString(), id: last.family_id }));
    return { sessions: page, nextPageToken };
  });
}
