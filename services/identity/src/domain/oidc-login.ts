import { createHash, randomUUID } from "node:crypto";
import { appendEvents, withServiceRole, withTenant, type AuditEvent, type Knex } from "@promptcraft/db";
import { AbortedError, AppError, InvalidArgumentError, NotFoundError, PermissionDeniedError, reasonName, ResourceExhaustedError, UnauthenticatedError } from "@promptcraft/platform";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import * as store from "../store/oidc.js";
import { findTenantBySlug } from "../store/sessions.js";
import { findTenant } from "../store/tenants.js";
import { countLiveUsers, findLiveUserByEmail, findUser, insertSsoUser, updateUser, type UserRow } from "../store/users.js";
import { decryptPrivateKey, encryptPrivateKey } from "./key-encryption.js";
import { authorizationUrl, idTokenInvalid, pkcePair, randomToken, type IdTokenClaims, type OidcClient } from "./oidc-client.js";
import { clientSecretAad } from "./oidc-providers.js";
import { loggedIn, openSession, type ClientInfo, type LoggedIn, type OpenedSession, type SessionSettings } from "./sessions.js";

/**
 * The OIDC login flow: StartOidcLogin remembers state, nonce and PKCE verifier and returns the
 * provider's authorization URL; CompleteOidcLogin consumes the state once, exchanges the code,
 * verifies the ID token, finds or provisions the user and opens a session like a password login.
 *
 * Who the user is (checked in this order, see docs/decisions.md):
 * 1. every login needs a verified email (`email_verified: true`) in an allowed domain;
 * 2. a linked identity (issuer, subject) is that user;
 * 3. else a live user of the tenant with the same email is linked, except an owner (an admin could
 *    otherwise configure a provider that asserts an owner's email and take the account over);
 * 4. else, if the provider provisions just in time, a new active user with its default role;
 * 5. else PERMISSION_DENIED (OIDC_USER_NOT_ALLOWED).
 * A deactivated or deleted user is refused; an invited one becomes active.
 */

/** How long a started login may be completed. */
export const LOGIN_ATTEMPT_TTL_MS = 10 * 60_000;

/** How a `state` is stored and looked up: SHA-256, hex (256 random bits, so a fast hash suffices). */
export function hashState(state: string): string {
  return createHash("sha256").update(state, "utf8").digest("hex");
}

function verifierAad(attemptId: string): string {
  return `oidc_login_attempt:${attemptId}`;
}

function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: unknown; constraint?: unknown } | null;
  return e?.code === "23505" && (e.constraint === "oauth_identity_issuer_subject_key" || e.constraint === "app_user_email_key");
}

/** INVALID_ARGUMENT (OIDC_STATE_INVALID) on the `state` field. */
function stateInvalid(why: string): InvalidArgumentError {
  return new InvalidArgumentError({ field: "state", description: why, reason: "oidc.state" }, { reason: ErrorReason.OIDC_STATE_INVALID });
}

function userNotAllowed(why: string, emailDomain: string): PermissionDeniedError {
  return new PermissionDeniedError(why, { reason: ErrorReason.OIDC_USER_NOT_ALLOWED, metadata: { email_domain: emailDomain } });
}

/** The lower-case domain of an email address. */
export function emailDomain(email: string): string {
  return email.slice(email.lastIndexOf("@") + 1).toLowerCase();
}

/** Whether a provider admits this email: any domain when its list is empty, else one of the list. */
export function domainAllowed(allowed: readonly string[], email: string): boolean {
  return allowed.length === 0 || allowed.includes(emailDomain(email));
}

export interface StartedLogin {
  authorizationUrl: string;
  state: string;
  expiresAt: Date;
}

/** StartOidcLogin: NOT_FOUND for an unknown tenant or an unknown or disabled provider. */
export async function startLogin(
  db: Knex,
  oidc: OidcClient,
  kek: Buffer,
  request: { tenantSlug: string; providerId: string; redirectUri: string; loginHint: string },
): Promise<StartedLogin> {
  const tenant = await withServiceRole(db, "identity", (trx) => findTenantBySlug(trx, request.tenantSlug));
  if (!tenant) throw new NotFoundError(`tenant ${request.tenantSlug} not found`);
  const scope = { service: "identity" as const, tenantId: tenant.id };
  const provider = await withTenant(db, scope, (trx) => store.findProvider(trx, tenant.id, request.providerId));
  if (!provider || !provider.enabled) throw new NotFoundError(`OIDC provider ${request.providerId} not found`);
  const doc = await oidc.discover(provider.issuer);
  const id = randomUUID();
  const state = randomToken();
  const nonce = randomToken();
  const pkce = pkcePair();
  const expiresAt = new Date(Date.now() + LOGIN_ATTEMPT_TTL_MS);
  await withTenant(db, scope, async (trx) => {
    await store.pruneLoginAttempts(trx, tenant.id);
    await store.insertLoginAttempt(trx, {
      tenantId: tenant.id,
      id,
      providerId: provider.id,
      stateHash: hashState(state),
      nonce,
      codeVerifier: encryptPrivateKey(pkce.verifier, kek, verifierAad(id)),
      redirectUri: request.redirectUri,
      expiresAt,
    });
  });
  const url = authorizationUrl(doc, {
    clientId: provider.client_id,
    redirectUri: request.redirectUri,
    scopes: provider.scopes,
    state,
    nonce,
    codeChallenge: pkce.challenge,
    loginHint: request.loginHint,
  });
  return { authorizationUrl: url, state, expiresAt };
}

/** A completed OIDC login: the session's tokens and user, the identity it used, and whether the user was just created. */
export interface CompletedLogin extends LoggedIn {
  identity: store.LinkedIdentityRow;
  userCreated: boolean;
}

/** Who the verified claims are in the tenant (rules 2-5 above), linking or provisioning as needed, with the events. */
async function resolveUser(
  trx: Knex.Transaction,
  provider: store.OidcProviderRow,
  claims: IdTokenClaims & { email: string },
  requestId: string,
): Promise<{ user: UserRow; identity: store.LinkedIdentityRow; userCreated: boolean }> {
  const tenantId = provider.tenant_id;
  const domain = emailDomain(claims.email);
  const system = { actorType: "system" as const, actorId: null, requestId };
  const linked = await store.findIdentityBySubject(trx, tenantId, claims.issuer, claims.subject);
  if (linked) {
    const user = await findUser(trx, tenantId, linked.user_id, true);
    if (!user || user.deleted_at) throw userNotAllowed("the linked user is deleted", domain);
    return { user, identity: await store.touchIdentity(trx, tenantId, linked.id, claims.email), userCreated: false };
  }
  let user = await findLiveUserByEmail(trx, tenantId, claims.email);
  let userCreated = false;
  const events: AuditEvent[] = [];
  if (user) {
    if (user.role === "owner") throw userNotAllowed("an owner's account is never linked by email; the owner logs in with their password", domain);
  } else {
    if (!provider.jit_enabled) throw userNotAllowed("no user of the tenant has this email and the provider does not create users", domain);
    const tenant = (await findTenant(trx, tenantId, true))!;
    const maxUsers = tenant.quotas.max_users;
    if (typeof maxUsers === "number" && (await countLiveUsers(trx, tenantId)) >= maxUsers) {
      throw new ResourceExhaustedError(`the tenant has reached its limit of ${maxUsers} users`, {
        reason: ErrorReason.QUOTA_EXCEEDED,
        metadata: { metric: "max_users", limit: String(maxUsers) },
      });
    }
    user = await insertSsoUser(trx, { tenantId, email: claims.email, displayName: (claims.name ?? "").trim().slice(0, 200) || claims.email.split("@")[0]!, role: provider.jit_role });
    userCreated = true;
    events.push({
      tenantId,
      aggregateType: "user",
      aggregateId: user.id,
      aggregateVersion: BigInt(user.row_version),
      eventType: "identity.user.created",
      payload: { email: user.email, role: user.role, status: user.status, via: "oidc_jit", oidc_provider_id: provider.id },
      ...system,
    });
  }
  const identity = await store.insertIdentity(trx, { tenantId, userId: user.id, providerId: provider.id, issuer: claims.issuer, subject: claims.subject, email: claims.email });
  events.push({
    tenantId,
    aggregateType: "linked_identity",
    aggregateId: identity.id,
    eventType: "identity.linked_identity.created",
    payload: { user_id: user.id, provider_id: provider.id, issuer: identity.issuer, subject: identity.subject, email: claims.email, by: userCreated ? "jit" : "email" },
    ...system,
  });
  await appendEvents(trx, events);
  return { user, identity, userCreated };
}

/**
 * CompleteOidcLogin. The state is consumed first, in its own transaction, so it is single use
 * even when a later step fails. Every failure after that is audited (`identity.login.failed`, method oidc).
 */
export async function completeLogin(
  db: Knex,
  oidc: OidcClient,
  kek: Buffer,
  settings: SessionSettings,
  request: { state: string; code: string; redirectUri: string },
  client: ClientInfo,
): Promise<CompletedLogin> {
  const stateHash = hashState(request.state);
  const found = await withServiceRole(db, "identity", (trx) => store.findLoginAttemptTenant(trx, stateHash));
  if (!found) throw stateInvalid("unknown, expired or already used state");
  const tenantId = found.tenant_id;
  const consumed = await withTenant(db, { service: "identity", tenantId }, async (trx) => {
    const attempt = await store.consumeLoginAttempt(trx, tenantId, found.id, stateHash);
    return attempt && { attempt, provider: await store.findProvider(trx, tenantId, attempt.provider_id) };
  });
  if (!consumed) throw stateInvalid("unknown, expired or already used state");
  const { attempt, provider } = consumed;
  let subject: string | undefined;
  let opened: { session: OpenedSession; identity: store.LinkedIdentityRow; userCreated: boolean };
  try {
    if (attempt.expires_at.getTime() <= Date.now()) throw stateInvalid("the login attempt expired; start again");
    if (attempt.redirect_uri !== request.redirectUri) throw stateInvalid("redirect_uri differs from the one given to StartOidcLogin");
    if (!provider || !provider.enabled) throw stateInvalid("the provider was disabled or deleted since the login started");
    const doc = await oidc.discover(provider.issuer);
    const idToken = await oidc.exchangeCode(
      doc,
      { clientId: provider.client_id, clientSecret: provider.client_secret === null ? null : decryptPrivateKey(provider.client_secret, kek, clientSecretAad(provider.id)) },
      { code: request.code, redirectUri: attempt.redirect_uri, codeVerifier: decryptPrivateKey(attempt.code_verifier, kek, verifierAad(attempt.id)) },
    );
    const claims = await oidc.verifyIdToken(doc, idToken, { issuer: provider.issuer, clientId: provider.client_id, nonce: attempt.nonce });
    subject = claims.subject;
    if (claims.email === undefined || !claims.emailVerified) throw idTokenInvalid("it carries no verified email");
    const email = claims.email;
    if (!domainAllowed(provider.allowed_email_domains, email)) {
      throw userNotAllowed(`the email domain ${emailDomain(email)} is not allowed by this provider`, emailDomain(email));
    }
    opened = await withTenant(db, { service: "identity", tenantId }, async (trx) => {
      const tenant = await findTenant(trx, tenantId);
      if (tenant?.status !== "active") throw new UnauthenticatedError("the tenant is suspended", { reason: ErrorReason.TENANT_SUSPENDED });
      const { user, identity, userCreated } = await resolveUser(trx, provider, { ...claims, email }, client.requestId);
      if (user.status === "deactivated") throw userNotAllowed("the user is deactivated", emailDomain(email));
      if (user.status === "invited") {
        const activated = await updateUser(trx, tenantId, user.id, { status: "active" });
        await appendEvents(trx, [
          {
            tenantId,
            aggregateType: "user",
            aggregateId: user.id,
            aggregateVersion: BigInt(activated.row_version),
            eventType: "identity.user.activated",
            payload: { via: "oidc", oidc_provider_id: provider.id },
            actorType: "user",
            actorId: user.id,
            requestId: client.requestId,
          },
        ]);
      }
      const session = await openSession(trx, settings.lifetimes, { tenantId, userId: user.id, authMethod: "oidc", oidcProviderId: provider.id }, client);
      return { session, identity, userCreated };
    });
  } catch (caught) {
    // Two first logins of the same person at once: one links (or creates) first, the other may retry.
    const err = isUniqueViolation(caught) ? new AbortedError("a concurrent login linked this identity; retry", { cause: caught }) : caught;
    if (err instanceof AppError) {
      await withTenant(db, { service: "identity", tenantId }, (trx) =>
        appendEvents(trx, [
          {
            tenantId,
            aggregateType: "oidc_provider",
            aggregateId: attempt.provider_id,
            eventType: "identity.login.failed",
            payload: { method: "oidc", reason: reasonName(err.reason), detail: err.message, subject: subject ?? null, client_address: client.clientAddress },
            actorType: "system",
            actorId: null,
            requestId: client.requestId,
          },
        ]),
      );
    }
    throw err;
  }
  return { ...(await loggedIn(settings, opened.session)), identity: opened.identity, userCreated: opened.userCreated };
}
