import type { MessageInitShape } from "@bufbuild/protobuf";
import { actorOf, callerOf, timestampFromDb, type CallContext, type ServiceDeps, type ServiceHandlers } from "@promptcraft/platform";
import type { AuthService } from "@promptcraft/proto/promptcraft/identity/v1/auth_service_pb";
import { AuthMethod, SessionRevokeReason, type AuthTokensSchema, type SessionSchema } from "@promptcraft/proto/promptcraft/identity/v1/resources_pb";
import type { IdentityConfig } from "../config.js";
import * as login from "../domain/login.js";
import { peerHost } from "../domain/login-throttle.js";
import * as sessions from "../domain/sessions.js";
import type { KeyRing } from "../domain/signing-keys.js";
import type { LocalCredentials } from "./local-credentials.js";
import { userToProto } from "./users.js";

const AUTH_METHOD_TO_PROTO: Record<sessions.SessionAuthMethod, AuthMethod> = {
  password: AuthMethod.PASSWORD,
  oidc: AuthMethod.OIDC,
  invitation: AuthMethod.INVITATION,
};
const REVOKE_REASON_TO_PROTO: Record<sessions.RevokeReason, SessionRevokeReason> = {
  logout: SessionRevokeReason.LOGOUT,
  revoked: SessionRevokeReason.REVOKED,
  reuse_detected: SessionRevokeReason.REFRESH_TOKEN_REUSED,
  password_changed: SessionRevokeReason.PASSWORD_CHANGED,
  user_disabled: SessionRevokeReason.USER_DISABLED,
};

/** A session family row as the contract's Session. */
function sessionToProto(row: sessions.FamilyRow): MessageInitShape<typeof SessionSchema> {
  return {
    id: row.family_id,
    userId: row.user_id,
    authMethod: AUTH_METHOD_TO_PROTO[row.auth_method],
    oidcProviderId: row.oidc_provider_id ?? "",
    userAgent: row.user_agent ?? "",
    clientAddress: row.client_ip ?? "",
    createTime: timestampFromDb(row.started_at),
    lastRefreshTime: timestampFromDb(row.created_at),
    expireTime: timestampFromDb(row.absolute_expires_at),
    revokeTime: row.revoked_at ? timestampFromDb(row.revoked_at) : undefined,
    revokeReason: row.revoked_reason
      ? (REVOKE_REASON_TO_PROTO[row.revoked_reason as sessions.RevokeReason] ?? SessionRevokeReason.REVOKED)
      : SessionRevokeReason.UNSPECIFIED,
  };
}

/** A session's tokens as the contract's AuthTokens. */
export function tokensToProto(t: sessions.SessionTokens): MessageInitShape<typeof AuthTokensSchema> {
  return {
    accessToken: t.accessToken,
    tokenType: "Bearer",
    accessTokenExpireTime: timestampFromDb(t.accessTokenExpiresAt),
    refreshToken: t.refreshToken,
    refreshTokenExpireTime: timestampFromDb(t.refreshTokenExpiresAt),
    sessionId: t.sessionId,
  };
}

/** Where the call comes from: `user-agent` (trimmed to what the table keeps), the peer's address, the request id. */
export function clientOf(ctx: CallContext): sessions.ClientInfo {
  const ua = ctx.header("user-agent");
  return { userAgent: ua ? ua.slice(0, 512) : null, clientAddress: peerHost(ctx.peer) ?? null, requestId: ctx.requestId };
}

/** The service's session settings: the key ring, access-token issuer and lifetime, session lifetimes. */
export function sessionSettings(config: IdentityConfig, keys: KeyRing): sessions.SessionSettings {
  return {
    keys,
    accessToken: { issuer: config.TOKEN_ISSUER, ttlS: config.ACCESS_TOKEN_TTL_S },
    lifetimes: { maxLifetimeS: config.SESSION_MAX_LIFETIME_S, refreshIdleTtlS: config.REFRESH_TOKEN_IDLE_TTL_S },
  };
}

/**
 * AuthService: password login, refresh, logout, sessions and passwords (Login, RefreshToken,
 * Logout, ListSessions, RevokeSession, ChangePassword, ResetPassword, GetLoginOptions); the rules
 * are in domain/login.ts and domain/sessions.ts. Logout is public (a refresh token is enough);
 * without one it checks the caller's access token itself (`LocalCredentials.tokenSession`).
 */
export function sessionHandlers(deps: ServiceDeps<IdentityConfig>, keys: KeyRing, credentials: LocalCredentials): ServiceHandlers<typeof AuthService> {
  const { db, config } = deps;
  const settings: login.LoginSettings = {
    ...sessionSettings(config, keys),
    throttle: {
      accountFailures: config.LOGIN_THROTTLE_ACCOUNT_FAILURES,
      addressFailures: config.LOGIN_THROTTLE_ADDRESS_FAILURES,
      baseDelayS: config.LOGIN_THROTTLE_BASE_DELAY_S,
      maxDelayS: config.LOGIN_THROTTLE_MAX_DELAY_S,
      windowS: config.LOGIN_THROTTLE_WINDOW_S,
    },
  };
  return {
    login: async (request, ctx) => {
      const { tokens, user } = await login.login(db, settings, { tenantSlug: request.tenantSlug, email: request.email, password: request.password }, clientOf(ctx));
      return { tokens: tokensToProto(tokens), user: userToProto({ user, purgeTime: undefined }) };
    },
    refreshToken: async (request, ctx) => ({ tokens: tokensToProto(await sessions.refreshSession(db, settings, request.refreshToken, clientOf(ctx))) }),
    logout: async (request, ctx) => {
      // Whoever holds the refresh token may end its session; without one, the access token's session.
      await sessions.logout(db, request.refreshToken ? { refreshToken: request.refreshToken } : await credentials.tokenSession(ctx), ctx.requestId);
      return {};
    },
    listSessions: async (request, ctx) => {
      const page = await sessions.listSessions(db, callerOf(ctx), {
        userId: request.userId,
        showInactive: request.showInactive,
        pageSize: request.pageSize,
        pageToken: request.pageToken,
      });
      return { sessions: page.sessions.map(sessionToProto), nextPageToken: page.nextPageToken };
    },
    revokeSession: async (request, ctx) => sessionToProto(await sessions.revokeSession(db, callerOf(ctx), request.sessionId, actorOf(ctx))),
    changePassword: async (request, ctx) => {
      await login.changePassword(db, settings.throttle, callerOf(ctx), { currentPassword: request.currentPassword, newPassword: request.newPassword }, ctx.requestId);
      return {};
    },
    resetPassword: async (request, ctx) => {
      await login.resetPassword(db, callerOf(ctx), { userId: request.userId, newPassword: request.newPassword }, actorOf(ctx));
      return {};
    },
    getLoginOptions: async (request) => login.loginOptions(db, request.tenantSlug),
  };
}
