import { appendEvents, withServiceRole, withTenant, type Knex } from "@promptcraft/db";
import {
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  requireCallerRole,
  ResourceExhaustedError,
  UnauthenticatedError,
  type Actor,
  type AuthContext,
} from "@promptcraft/platform";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import { clearThrottles, readThrottles, recordFailures, throttleMapKey, type ThrottleKey } from "../store/login-throttle.js";
import { findPasswordHolder, findTenantBySlug, findUserByEmail, revokeUserSessions, setPasswordHash } from "../store/sessions.js";
import { findTenant } from "../store/tenants.js";
import { findUser } from "../store/users.js";
import { accountKey, addressKey, retryAfterMs, type ThrottlePolicy } from "./login-throttle.js";
import { listLoginProviders } from "./oidc-providers.js";
import { burnPasswordHash, hashPassword, passwordPolicyProblem, verifyPassword } from "./passwords.js";
import { loggedIn, openSession, passwordLoginDisabled, type ClientInfo, type LoggedIn, type SessionSettings } from "./sessions.js";

/**
 * Passwords: Login (throttled per account and per client address, one answer for every failure,
 * one password hash per attempt whether or not the user exists), ChangePassword (throttled like a
 * login), ResetPassword (admins), and the login options a tenant offers.
 */

/** What a password login needs besides sessions: the throttling thresholds. */
export interface LoginSettings extends SessionSettings {
  throttle: ThrottlePolicy;
}

/** The one answer to every failed login (unknown tenant/email, wrong password, inactive user). */
const loginFailed = () => new UnauthenticatedError("login failed: wrong tenant, email or password", { reason: ErrorReason.LOGIN_FAILED });

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

/** INVALID_ARGUMENT (PASSWORD_POLICY) on `new_password` when it breaks the policy. */
function checkNewPassword(password: string, email: string): void {
  const problem = passwordPolicyProblem(password, email);
  if (problem) throw new InvalidArgumentError({ field: "new_password", description: problem, reason: "password.policy" }, { reason: ErrorReason.PASSWORD_POLICY });
}

/**
 * Login with tenant slug, email and password. Every failure is the same UNAUTHENTICATED
 * (LOGIN_FAILED), counted against the account and the client address and, where the tenant is
 * known, audited (`identity.login.failed`). A suspended tenant and a single-sign-on-only tenant are told
 * only after a correct password. Success resets the account's counter and opens a session.
 */
export async function login(
  db: Knex,
  settings: LoginSettings,
  input: { tenantSlug: string; email: string; password: string },
  client: ClientInfo,
): Promise<LoggedIn> {
  const email = input.email.trim();
  const address = addressKey(client.clientAddress ?? undefined);
  // 1. Look the tenant and user up (SECURITY DEFINER functions: no tenant is set yet), and
  //    refuse at once if the account or the address is blocked.
  const { tenant, user, throttleKeys } = await withServiceRole(db, "identity", async (trx) => {
    const tenant = await findTenantBySlug(trx, input.tenantSlug);
    const user = tenant ? await findUserByEmail(trx, tenant.id, email) : undefined;
    const throttleKeys: ThrottleKey[] = [{ scope: "account", key: accountKey(tenant ?? { slug: input.tenantSlug.toLowerCase() }, email) }];
    if (address) throttleKeys.push({ scope: "address", key: address });
    await refuseIfThrottled(trx, throttleKeys);
    return { tenant, user, throttleKeys };
  });

  // 2. Always one password hash, whether or not the user exists, so every failure costs the same.
  let passwordOk = false;
  if (user?.password_hash) passwordOk = await verifyPassword(input.password, user.password_hash);
  else await burnPasswordHash(input.password);
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

  if (why !== undefined || !tenant || !user) {
    // 3a. Count the failure (account and address) and, where the tenant is known, audit it.
    if (tenant) {
      await withTenant(db, { service: "identity", tenantId: tenant.id }, async (trx) => {
        await recordFailures(trx, throttleKeys, settings.throttle);
        await appendEvents(trx, [
          {
            tenantId: tenant.id,
            aggregateType: "user",
            aggregateId: user?.id ?? null,
            eventType: "identity.login.failed",
            payload: { email: email.toLowerCase(), reason: why, client_address: client.clientAddress, method: "password" },
            actorType: user ? "user" : "system",
            actorId: user?.id ?? null,
            requestId: client.requestId,
          },
        ]);
      });
    } else {
      await withServiceRole(db, "identity", (trx) => recordFailures(trx, throttleKeys, settings.throttle));
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
    return openSession(trx, settings.lifetimes, { tenantId: tenant.id, userId: user.id, authMethod: "password" }, client);
  });
  return loggedIn(settings, opened);
}

/**
 * ChangePassword: a user (an access token's, not an API key) proves the current password and sets
 * a new one. A wrong current password counts against the account like a failed login; success
 * clears the counter and ends every other session of the user.
 */
export async function changePassword(
  db: Knex,
  throttle: ThrottlePolicy,
  caller: AuthContext,
  input: { currentPassword: string; newPassword: string },
  requestId: string,
): Promise<void> {
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
  const actor: Actor = { actorType: "user", actorId: userId, requestId };
  if (!(await verifyPassword(input.currentPassword, user.password_hash))) {
    await withTenant(db, scope, async (trx) => {
      await recordFailures(trx, accountKeys, throttle);
      await appendEvents(trx, [{ tenantId, aggregateType: "user", aggregateId: userId, eventType: "identity.user.password_change_failed", payload: {}, ...actor }]);
    });
    throw new UnauthenticatedError("the current password is wrong", { reason: ErrorReason.PASSWORD_MISMATCH });
  }
  checkNewPassword(input.newPassword, user.email);
  const hash = await hashPassword(input.newPassword);
  await withTenant(db, scope, async (trx) => {
    await clearThrottles(trx, accountKeys);
    const rowVersion = await setPasswordHash(trx, tenantId, userId, hash);
    const revoked = await revokeUserSessions(trx, tenantId, userId, "password_changed", caller.credentialId);
    await appendEvents(trx, [
      {
        tenantId,
        aggregateType: "user",
        aggregateId: userId,
        aggregateVersion: Number(rowVersion),
        eventType: "identity.user.password_changed",
        payload: { revoked_sessions: revoked },
        ...actor,
      },
    ]);
  });
}

/**
 * ResetPassword: an admin sets another user's password (an owner's only by an owner), clears the
 * user's login counter and ends all their sessions.
 */
export async function resetPassword(db: Knex, caller: AuthContext, input: { userId: string; newPassword: string }, actor: Actor): Promise<void> {
  requireCallerRole(caller, "admin");
  const targetId = input.userId.toLowerCase();
  await withTenant(db, { service: "identity", tenantId: caller.tenantId, userId: caller.userId ?? null }, async (trx) => {
    const target = await findUser(trx, caller.tenantId, targetId, true);
    if (!target) throw new NotFoundError(`user ${targetId} not found`);
    if (target.deleted_at) throw new FailedPreconditionError(`user ${targetId} is deleted`, { reason: ErrorReason.RESOURCE_DELETED });
    if (target.role === "owner" && caller.role !== "owner") {
      throw new PermissionDeniedError("only an owner can reset an owner's password", { reason: ErrorReason.PERMISSION_INSUFFICIENT, metadata: { required_role: "owner" } });
    }
    checkNewPassword(input.newPassword, target.email);
    const hash = await hashPassword(input.newPassword);
    const rowVersion = await setPasswordHash(trx, caller.tenantId, targetId, hash);
    await clearThrottles(trx, [{ scope: "account", key: accountKey({ id: caller.tenantId }, target.email) }]);
    const revoked = await revokeUserSessions(trx, caller.tenantId, targetId, "password_changed");
    await appendEvents(trx, [
      {
        tenantId: caller.tenantId,
        aggregateType: "user",
        aggregateId: targetId,
        aggregateVersion: Number(rowVersion),
        eventType: "identity.user.password_reset",
        payload: { revoked_sessions: revoked },
        ...actor,
      },
    ]);
  });
}

/** How a tenant's users may log in: whether passwords are accepted, and the enabled OIDC providers. */
export interface LoginOptions {
  passwordLoginEnabled: boolean;
  providers: { oidcProviderId: string; displayName: string }[];
}

/** GetLoginOptions (public): NOT_FOUND for an unknown tenant slug. */
export async function loginOptions(db: Knex, tenantSlug: string): Promise<LoginOptions> {
  const tenant = await withServiceRole(db, "identity", (trx) => findTenantBySlug(trx, tenantSlug));
  if (!tenant) throw new NotFoundError(`tenant ${tenantSlug} not found`);
  return withTenant(db, { service: "identity", tenantId: tenant.id }, async (trx) => ({
    passwordLoginEnabled: !passwordLoginDisabled((await findTenant(trx, tenant.id))?.settings),
    providers: await listLoginProviders(trx, tenant.id),
  }));
}
