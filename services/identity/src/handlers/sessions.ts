import { randomUUID } from "node:crypto";
import {
  actorOf,
  callerOf,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  requireRole,
  ResourceExhaustedError,
  roleAtLeast,
  UnauthenticatedError,
  type CallContext,
  type ServiceDeps,
  type ServiceHandlers,
} from "@promptcraft/platform";
import { appendEvents, withServiceRole, withTenant, type AuditEvent, type Knex } from "@promptcraft/db";
import type { AuthService } from "@promptcraft/proto/promptcraft/identity/v1/auth_service_pb";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import type { IdentityConfig } from "../config.js";
import { accountKey, addressKey, peerHost, retryAfterMs, type ThrottlePolicy } from "../domain/login-throttle.js";
import { burnPasswordHash, hashPassword, passwordPolicyProblem, verifyPassword } from "../domain/passwords.js";
import { listLoginProviders } from "../domain/oidc-providers.js";
import {
  hashRefreshToken,
  listSessions,
  newRefreshToken,
  openSession,
  passwordLoginDisabled,
  refreshTokenExpiry,
  sessionToProto,
  sessionTokens,
  type RevokeReason,
  type SessionLifetimes,
} from "../domain/sessions.js";
import type { KeyRing } from "../domain/signing-keys.js";
import type { LocalCredentials } from "./local-credentials.js";
import { clearThrottles, readThrottles, recordFailures, throttleMapKey, type ThrottleKey } from "../store/login-throttle.js";
import {
  findPasswordHolder,
  findRefreshToken,
  findTenantBySlug,
  findUserByEmail,
  getFamily,
  insertSession,
  lockSessionRow,
  markRotated,
  revokeFamily,
  revokeUserSessions,
  setPasswordHash,
} from "../store/sessions.js";
import { findTenant } from "../store/tenants.js";
import { findUser } from "../store/users.js";
import { userToProto } from "./users.js";

/** The one answer to every failed login (unknown tenant/email, wrong password, inactive user). */
const loginFailed = () => new UnauthenticatedError("login failed: wrong tenant, email or password", { reason: ErrorReason.LOGIN_FAILED });
const refreshInvalid = () => new UnauthenticatedError("refresh token invalid or expired", { reason: ErrorReason.REFRESH_TOKEN_INVALID });

function throttlePolicy(config: IdentityConfig): ThrottlePolicy {
  return {
    accountFailures: config.LOGIN_THROTTLE_ACCOUNT_FAILURES,
    addressFailures: config.LOGIN_THROTTLE_ADDRESS_FAILURES,
    baseDelayS: config.LOGIN_THROTTLE_BASE_DELAY_S,
    maxDelayS: config.LOGIN_THROTTLE_MAX_DELAY_S,
    windowS: config.LOGIN_THROTTLE_WINDOW_S,
  };
}

/** RESOURCE_EXHAUSTED (LOGIN_THROTTLED) with RetryInfo if any of `keys` is blocked now. */
async function refuseIfThrottled(trx: Knex.Transaction, keys: readonly ThrottleKey[]): Promise<void> {
  const states = await readThrottles(trx, keys);
  const now = new Date();
  const wait = Math.max(0, ...keys.map((k) => retryAfterMs(states.get(throttleMapKey(k)), now)));
  if (wait > 0) {
    throw new ResourceExhaustedError("too many failed logins; try again later", {
      reason: ErrorReason.LOGIN_THROTTLED,
      retryAfterMs: Math.ceil(wait / 1000) * 1000,
    });
  }
}

/** `user-agent` of the call, trimmed to what the table keeps. */
export function userAgentOf(ctx: CallContext): string | null {
  const ua = ctx.header("user-agent");
  return ua ? ua.slice(0, 512) : null;
}

/** The service's session lifetimes. */
export function sessionLifetimes(config: IdentityConfig): SessionLifetimes {
  return { maxLifetimeS: config.SESSION_MAX_LIFETIME_S, refreshIdleTtlS: config.REFRESH_TOKEN_IDLE_TTL_S };
}

/**
 * AuthService: password login, refresh, logout, sessions and passwords (Login, RefreshToken,
 * Logout, ListSessions, RevokeSession, ChangePassword, ResetPassword, GetLoginOptions).
 * Logout is public (a refresh token is enough); without one it checks the caller's access token
 * itself (`LocalCredentials.tokenSession`).
 */
export function sessionHandlers(deps: ServiceDeps<IdentityConfig>, keys: KeyRing, credentials: LocalCredentials): ServiceHandlers<typeof AuthService> {
  const { db, config } = deps;
  const policy = throttlePolicy(config);
  const tokenSettings = { issuer: config.TOKEN_ISSUER, ttlS: config.ACCESS_TOKEN_TTL_S };
  const lifetimes = sessionLifetimes(config);

  /** The events and revocation of a session family, for Logout and RevokeSession. */
  async function endFamily(trx: Knex.Transaction, tenantId: string, familyId: string, userId: string, reason: RevokeReason, ctx: CallContext, actor: AuditEvent["actorType"], actorId: string | null) {
    const changed = await revokeFamily(trx, familyId, reason);
    if (changed > 0) {
      await appendEvents(trx, [
        {
          tenantId,
          aggregateType: "session",
          aggregateId: familyId,
          eventType: reason === "logout" ? "session.logged_out" : "session.revoked",
          payload: { user_id: userId, reason },
          actorType: actor,
          actorId,
          requestId: ctx.requestId,
        },
      ]);
    }
  }

  return {
    login: async (request, ctx) => {
      const email = request.email.trim();
      const address = addressKey(ctx.peer);
      // 1. Look the tenant and user up (SECURITY DEFINER functions: no tenant is set yet), and
      //    refuse at once if the account or the address is blocked.
      const found = await withServiceRole(db, "identity", async (trx) => {
        const tenant = await findTenantBySlug(trx, request.tenantSlug);
        const user = tenant ? await findUserByEmail(trx, tenant.id, email) : undefined;
        const throttleKeys: ThrottleKey[] = [{ scope: "account", key: accountKey(tenant ?? { slug: request.tenantSlug.toLowerCase() }, email) }];
        if (address) throttleKeys.push({ scope: "address", key: address });
        await refuseIfThrottled(trx, throttleKeys);
        return { tenant, user, throttleKeys };
      });
      const { tenant, user, throttleKeys } = found;

      // 2. Always one password hash, whether or not the user exists, so every failure costs the same.
      let passwordOk = false;
      if (user?.password_hash) passwordOk = await verifyPassword(request.password, user.password_hash);
      else await burnPasswordHash(request.password);
      const why = !tenant
        ? "unknown_tenant"
        : !user
          ? "unknown_user"
          : !user.password_hash
            ? "no_password"
            : !passwordOk
              ? "wrong_password"
              : user.status !== "active"
                ? `user_${user.status}`
                : undefined;
      const client = peerHost(ctx.peer) ?? null;

      if (why !== undefined || !tenant || !user) {
        // 3a. Count the failure (account and address) and, where the tenant is known, audit it.
        if (tenant) {
          await withTenant(db, { service: "identity", tenantId: tenant.id }, async (trx) => {
            await recordFailures(trx, throttleKeys, policy);
            await appendEvents(trx, [
              {
                tenantId: tenant.id,
                aggregateType: "app_user",
                aggregateId: user?.id ?? null,
                eventType: "login.failed",
                payload: { email: email.toLowerCase(), reason: why, client_address: client, method: "password" },
                actorType: user ? "user" : "system",
                actorId: user?.id ?? null,
                requestId: ctx.requestId,
              },
            ]);
          });
        } else {
          await withServiceRole(db, "identity", (trx) => recordFailures(trx, throttleKeys, policy));
        }
        throw loginFailed();
      }
      if (tenant.status !== "active") {
        throw new UnauthenticatedError("the tenant is suspended", { reason: ErrorReason.TENANT_SUSPENDED });
      }

      // 3b. Success: reset the account counter, start a session, audit, in one transaction.
      const opened = await withTenant(db, { service: "identity", tenantId: tenant.id, userId: user.id }, async (trx) => {
        // Like a suspended tenant, told only after a correct password.
        if (passwordLoginDisabled((await findTenant(trx, tenant.id))?.settings)) {
          throw new FailedPreconditionError("this tenant accepts single sign-on (OIDC) only", { reason: ErrorReason.PASSWORD_LOGIN_DISABLED });
        }
        await clearThrottles(trx, throttleKeys.filter((k) => k.scope === "account"));
        return openSession(trx, lifetimes, {
          tenantId: tenant.id,
          userId: user.id,
          authMethod: "password",
          userAgent: userAgentOf(ctx),
          clientAddress: client,
          requestId: ctx.requestId,
        });
      });
      return {
        tokens: await sessionTokens(keys, tokenSettings, { tenantId: tenant.id, userId: user.id, role: opened.user.role, ...opened }),
        user: userToProto({ user: opened.user, purgeTime: undefined }),
      };
    },

    refreshToken: async (request, ctx) => {
      const found = await withServiceRole(db, "identity", (trx) => findRefreshToken(trx, hashRefreshToken(request.refreshToken)));
      if (!found) throw refreshInvalid();
      const refreshToken = newRefreshToken();
      const outcome = await withTenant(db, { service: "identity", tenantId: found.tenant_id, userId: found.user_id }, async (trx) => {
        const row = await lockSessionRow(trx, found.id);
        if (!row) return { error: refreshInvalid() };
        if (row.revoked_at) return { error: new UnauthenticatedError("the session was revoked", { reason: ErrorReason.CREDENTIALS_REVOKED }) };
        if (row.rotated_at) {
          // A spent token presented again: whoever holds it may have stolen it. End the session.
          await revokeFamily(trx, row.family_id, "reuse_detected");
          await appendEvents(trx, [
            {
              tenantId: row.tenant_id,
              aggregateType: "session",
              aggregateId: row.family_id,
              eventType: "session.refresh_token_reused",
              payload: { user_id: row.user_id, generation: row.generation, client_address: peerHost(ctx.peer) ?? null },
              actorType: "system",
              requestId: ctx.requestId,
            },
          ]);
          return { error: new UnauthenticatedError("refresh token already used; the session is revoked", { reason: ErrorReason.REFRESH_TOKEN_REUSED }) };
        }
        const now = new Date();
        if (new Date(row.expires_at) <= now || new Date(row.absolute_expires_at) <= now) return { error: refreshInvalid() };
        const tenant = await findTenant(trx, row.tenant_id);
        if (tenant?.status !== "active") return { error: new UnauthenticatedError("the tenant is suspended", { reason: ErrorReason.TENANT_SUSPENDED }) };
        const user = await findUser(trx, row.tenant_id, row.user_id);
        if (!user || user.status !== "active" || user.deleted_at) {
          await revokeFamily(trx, row.family_id, "user_disabled");
          return { error: new UnauthenticatedError("the user is no longer active", { reason: ErrorReason.CREDENTIALS_REVOKED }) };
        }
        const absoluteExpiresAt = new Date(row.absolute_expires_at);
        const expiresAt = refreshTokenExpiry(now, config.REFRESH_TOKEN_IDLE_TTL_S, absoluteExpiresAt);
        await markRotated(trx, row.id, now);
        await insertSession(trx, {
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
          userAgent: userAgentOf(ctx) ?? row.user_agent,
          clientIp: peerHost(ctx.peer) ?? row.client_ip,
          createdAt: now,
        });
        return { ok: { tenantId: row.tenant_id, userId: row.user_id, role: user.role, familyId: row.family_id, expiresAt } };
      });
      if ("error" in outcome) throw outcome.error as Error;
      const { ok } = outcome;
      return { tokens: await sessionTokens(keys, tokenSettings, { ...ok, sessionId: ok.familyId, refreshToken, refreshExpiresAt: ok.expiresAt }) };
    },

    logout: async (request, ctx) => {
      if (request.refreshToken) {
        // Whoever holds the refresh token may end its session.
        const found = await withServiceRole(db, "identity", (trx) => findRefreshToken(trx, hashRefreshToken(request.refreshToken)));
        if (found) {
          await withTenant(db, { service: "identity", tenantId: found.tenant_id, userId: found.user_id }, (trx) =>
            endFamily(trx, found.tenant_id, found.family_id, found.user_id, "logout", ctx, "user", found.user_id),
          );
        }
        return {};
      }
      // Logout is public (a refresh token suffices), so without one it checks the access token here.
      const { tenantId, userId, sessionId } = await credentials.tokenSession(ctx);
      await withTenant(db, { service: "identity", tenantId, userId }, async (trx) => {
        const family = await getFamily(trx, sessionId);
        if (family && family.user_id === userId) await endFamily(trx, tenantId, sessionId, userId, "logout", ctx, "user", userId);
      });
      return {};
    },

    listSessions: async (request, ctx) => {
      const caller = callerOf(ctx);
      const userId = request.userId ? request.userId.toLowerCase() : caller.userId;
      if (!userId) throw new FailedPreconditionError("an API key has no sessions: name a user_id");
      if (userId !== caller.userId) requireRole(ctx, "admin");
      const page = await listSessions(db, caller, { userId, showInactive: request.showInactive, pageSize: request.pageSize, pageToken: request.pageToken });
      return { sessions: page.sessions.map(sessionToProto), nextPageToken: page.nextPageToken };
    },

    revokeSession: async (request, ctx) => {
      const caller = callerOf(ctx);
      const familyId = request.sessionId.toLowerCase();
      return withTenant(db, { service: "identity", tenantId: caller.tenantId, userId: caller.userId ?? null, signal: caller.signal }, async (trx) => {
        const family = await getFamily(trx, familyId);
        const mayRevoke = family && (family.user_id === caller.userId || roleAtLeast(caller.role, "admin"));
        if (!family || !mayRevoke) throw new NotFoundError(`session ${familyId} not found`);
        const actor = actorOf(ctx);
        await endFamily(trx, caller.tenantId, familyId, family.user_id, "revoked", ctx, actor.actorType, actor.actorId);
        return sessionToProto((await getFamily(trx, familyId))!);
      });
    },

    changePassword: async (request, ctx) => {
      const caller = callerOf(ctx);
      if (caller.kind !== "access_token" || !caller.userId) throw new PermissionDeniedError("only a user can change their password");
      const { tenantId, userId } = caller;
      const scope = { service: "identity" as const, tenantId, userId };
      const user = await withTenant(db, scope, async (trx) => {
        const row = await findPasswordHolder(trx, tenantId, userId);
        if (!row) throw new UnauthenticatedError("the user no longer exists", { reason: ErrorReason.CREDENTIALS_REVOKED });
        await refuseIfThrottled(trx, [{ scope: "account", key: accountKey({ id: tenantId }, row.email) }]);
        return row;
      });
      const accountKeys: ThrottleKey[] = [{ scope: "account", key: accountKey({ id: tenantId }, user.email) }];
      if (!(await verifyPassword(request.currentPassword, user.password_hash))) {
        await withTenant(db, scope, async (trx) => {
          await recordFailures(trx, accountKeys, policy);
          await appendEvents(trx, [
            { tenantId, aggregateType: "app_user", aggregateId: userId, eventType: "user.password_change_failed", payload: {}, actorType: "user", actorId: userId, requestId: ctx.requestId },
          ]);
        });
        throw new UnauthenticatedError("the current password is wrong", { reason: ErrorReason.PASSWORD_MISMATCH });
      }
      const problem = passwordPolicyProblem(request.newPassword, user.email);
      if (problem) throw new InvalidArgumentError({ field: "new_password", description: problem, reason: "password.policy" }, { reason: ErrorReason.PASSWORD_POLICY });
      const hash = await hashPassword(request.newPassword);
      await withTenant(db, scope, async (trx) => {
        await clearThrottles(trx, accountKeys);
        const rowVersion = await setPasswordHash(trx, tenantId, userId, hash);
        const revoked = await revokeUserSessions(trx, userId, "password_changed", caller.credentialId);
        await appendEvents(trx, [
          {
            tenantId,
            aggregateType: "app_user",
            aggregateId: userId,
            aggregateVersion: Number(rowVersion),
            eventType: "user.password_changed",
            payload: { revoked_sessions: revoked },
            actorType: "user",
            actorId: userId,
            requestId: ctx.requestId,
          },
        ]);
      });
      return {};
    },

    resetPassword: async (request, ctx) => {
      const caller = requireRole(ctx, "admin");
      const targetId = request.userId.toLowerCase();
      const actor = actorOf(ctx);
      return withTenant(db, { service: "identity", tenantId: caller.tenantId, userId: caller.userId ?? null, signal: caller.signal }, async (trx) => {
        const target = await findUser(trx, caller.tenantId, targetId, true);
        if (!target) throw new NotFoundError(`user ${targetId} not found`);
        if (target.deleted_at) throw new FailedPreconditionError(`user ${targetId} is deleted`, { reason: ErrorReason.RESOURCE_DELETED });
        if (target.role === "owner" && caller.role !== "owner") {
          throw new PermissionDeniedError("only an owner can reset an owner's password", { reason: ErrorReason.PERMISSION_INSUFFICIENT, metadata: { required_role: "owner" } });
        }
        const problem = passwordPolicyProblem(request.newPassword, target.email);
        if (problem) throw new InvalidArgumentError({ field: "new_password", description: problem, reason: "password.policy" }, { reason: ErrorReason.PASSWORD_POLICY });
        const hash = await hashPassword(request.newPassword);
        const rowVersion = await setPasswordHash(trx, caller.tenantId, targetId, hash);
        await clearThrottles(trx, [{ scope: "account", key: accountKey({ id: caller.tenantId }, target.email) }]);
        const revoked = await revokeUserSessions(trx, targetId, "password_changed");
        await appendEvents(trx, [
          {
            tenantId: caller.tenantId,
            aggregateType: "app_user",
            aggregateId: targetId,
            aggregateVersion: Number(rowVersion),
            eventType: "user.password_reset",
            payload: { revoked_sessions: revoked },
            ...actor,
          },
        ]);
        return {};
      });
    },

    getLoginOptions: async (request) => {
      const tenant = await withServiceRole(db, "identity", (trx) => findTenantBySlug(trx, request.tenantSlug));
      if (!tenant) throw new NotFoundError(`tenant ${request.tenantSlug} not found`);
      return withTenant(db, { service: "identity", tenantId: tenant.id }, async (trx) => ({
        passwordLoginEnabled: !passwordLoginDisabled((await findTenant(trx, tenant.id))?.settings),
        providers: await listLoginProviders(trx, tenant.id),
      }));
    },
  };
}
