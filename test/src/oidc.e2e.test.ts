import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { createHash, createHmac, generateKeyPairSync, randomUUID, sign as cryptoSign } from "node:crypto";
import { decodeJwt, decodeProtectedHeader } from "jose";
import { OAuth2Server, type MutableResponse, type MutableToken } from "oauth2-mock-server";
import type { DescMessage, DescMethodUnary, MessageInitShape } from "@bufbuild/protobuf";
import { AuthService } from "@promptcraft/proto/promptcraft/identity/v1/auth_service_pb";
import { IdentityService } from "@promptcraft/proto/promptcraft/identity/v1/identity_service_pb";
import { AuthMethod, Role, UserState } from "@promptcraft/proto/promptcraft/identity/v1/resources_pb";
import { createTenant, createUser, uniqueSlug, type UserRole } from "@promptcraft/testing";
import { IdentityHarness } from "./identity-e2e-helpers.js";
import { callUnary, testPasswordHash, type Protocol } from "./login-helpers.js";
import { assertForgedPageTokensRefused } from "./page-tokens.js";

/**
 * OpenID Connect login end to end: a real OIDC provider (oauth2-mock-server) runs in the test; the
 * test plays the browser with fetch (follows the authorization URL and takes the code from the
 * provider's redirect), and calls StartOidcLogin / CompleteOidcLogin over gRPC and Connect.
 * Bad ID tokens are made by the provider itself (its beforeTokenSigning hook) or by replacing its
 * token response (beforeResponse), never by calling our code with made-up codes.
 */

const REDIRECT_URI = "https://app.example.test/oidc/callback";
const CLIENT_ID = "promptcraft-test-client";
const CLIENT_SECRET = "s3cret-client-secret-value";

const harness = new IdentityHarness();
let idp: OAuth2Server;
let issuer: string;
let slug: string;
let tenantId: string;
let admin: { id: string; token: string };
let providerId: string;
/** Claims the provider puts into the next ID tokens (sub, email, email_verified, …). */
let idClaims: Record<string, unknown> = {};
/** Extra changes to the next ID token's payload (bad nonce, issuer, audience, expiry), cleared after each test. */
let tamper: ((payload: Record<string, unknown>) => void) | undefined;
/** Replaces the provider's token response (re-signed or unsigned ID tokens), cleared after each test. */
let replaceResponse: ((response: MutableResponse) => void) | undefined;
/** `code_verifier` of the last token request the provider received. */
let lastCodeVerifier: string | undefined;

function call<I extends DescMessage, O extends DescMessage>(protocol: Protocol, method: DescMethodUnary<I, O>, request: MessageInitShape<I>, token?: string) {
  return callUnary(protocol, harness.identity, method, request, token);
}

function ok<O>(outcome: { ok: true; response: O } | { ok: false; code: string; reason: string | undefined; message: string }): O {
  if (!outcome.ok) assert.fail(`expected success, got ${outcome.code} ${outcome.reason}: ${outcome.message}`);
  return outcome.response;
}

function failure(outcome: { ok: true } | { ok: false; code: string; reason: string | undefined }): { code: string; reason: string | undefined } {
  return outcome.ok ? { code: "OK", reason: undefined } : { code: outcome.code, reason: outcome.reason };
}

/** A new user of the tenant (optionally with a stored password hash). */
async function newUser(role: UserRole, options: { email?: string; password?: boolean } = {}): Promise<{ id: string; email: string; token: string }> {
  const email = options.email ?? `u-${randomUUID().slice(0, 8)}@corp.example`;
  const id = await createUser(harness.db, tenantId, role, { email, passwordHash: options.password ? "$scrypt$ln=15,r=8,p=1$c2FsdA$a2V5a2V5a2V5" : null });
  return { id, email, token: await harness.token(tenantId, id, role) };
}

/** The browser: follows the authorization URL to the provider and returns the callback's code and state. */
async function browse(authorizationUrl: string): Promise<{ code: string; state: string }> {
  const res = await fetch(authorizationUrl, { redirect: "manual" });
  assert.equal(res.status, 302, `the provider should redirect back, got ${res.status}`);
  const location = new URL(res.headers.get("location")!);
  assert.equal(`${location.origin}${location.pathname}`, REDIRECT_URI);
  return { code: location.searchParams.get("code")!, state: location.searchParams.get("state")! };
}

/** Starts a login, lets the provider authenticate `claims`, and returns the callback parameters. */
async function startAndAuthorize(protocol: Protocol, claims: Record<string, unknown>, options: { provider?: string; editUrl?: (url: URL) => void } = {}) {
  idClaims = claims;
  const started = ok(await call(protocol, AuthService.method.startOidcLogin, { tenantSlug: slug, oidcProviderId: options.provider ?? providerId, redirectUri: REDIRECT_URI }));
  const url = new URL(started.authorizationUrl);
  options.editUrl?.(url);
  const callback = await browse(url.href);
  assert.equal(callback.state, started.state);
  return { started, callback, url: new URL(started.authorizationUrl) };
}

/** A whole login: start, browser leg, complete. */
async function oidcLogin(protocol: Protocol, claims: Record<string, unknown>, options: { provider?: string; editUrl?: (url: URL) => void } = {}) {
  const { callback } = await startAndAuthorize(protocol, claims, options);
  return call(protocol, AuthService.method.completeOidcLogin, { state: callback.state, code: callback.code, redirectUri: REDIRECT_URI });
}

function person(domain = "corp.example") {
  const local = `p-${randomUUID().slice(0, 8)}`;
  return { sub: `sub-${randomUUID()}`, email: `${local}@${domain}`, email_verified: true, name: `Person ${local}` };
}

async function events(eventType: string): Promise<{ aggregate_id: string | null; actor_type: string; actor_id: string | null; payload: Record<string, unknown> }[]> {
  return (await harness.events(tenantId)).filter((e) => e.event_type === eventType);
}

async function createProvider(protocol: Protocol, token: string, fields: Record<string, unknown>) {
  return call(protocol, IdentityService.method.createOidcProvider, {
    oidcProvider: { displayName: "Corp SSO", issuerUri: issuer, clientId: `client-${randomUUID().slice(0, 8)}`, enabled: true, ...fields },
  }, token);
}

beforeAll(async () => {
  await harness.start();
  idp = new OAuth2Server();
  await idp.issuer.keys.generate("RS256");
  await idp.start(0, "127.0.0.1");
  issuer = `http://127.0.0.1:${idp.address().port}`;
  idp.issuer.url = issuer;
  idp.service.on("beforeTokenSigning", (token: MutableToken) => {
    // The ID token is the one with an audience (the access token of this grant has none).
    if (token.payload.aud === undefined) return;
    Object.assign(token.payload, idClaims);
    tamper?.(token.payload);
  });
  idp.service.on("beforeResponse", (response: MutableResponse, req: { body?: Record<string, unknown> }) => {
    lastCodeVerifier = typeof req.body?.code_verifier === "string" ? req.body.code_verifier : undefined;
    replaceResponse?.(response);
  });
  slug = uniqueSlug("oidc");
  tenantId = await createTenant(harness.db, { slug });
  const adminId = await createUser(harness.db, tenantId, "admin");
  admin = { id: adminId, token: await harness.token(tenantId, adminId, "admin") };
  const created = ok(
    await call("grpc", IdentityService.method.createOidcProvider, {
      oidcProvider: {
        displayName: "Corp SSO",
        issuerUri: issuer,
        clientId: CLIENT_ID,
        clientSecret: CLIENT_SECRET,
        allowedEmailDomains: ["Corp.Example"],
        jitProvisioningEnabled: true,
        jitDefaultRole: Role.EDITOR,
        enabled: true,
      },
    }, admin.token),
  );
  providerId = created.id;
});

afterAll(async () => {
  await idp?.stop();
  await harness.close();
});

function resetHooks() {
  tamper = undefined;
  replaceResponse = undefined;
  idClaims = {};
}

for (const protocol of ["grpc", "connect"] as const) {
  describe(`OIDC login over ${protocol}`, () => {
    test("first login creates the user just in time (allowed domain), links the identity and opens a session", async () => {
      const who = person();
      const res = ok(await oidcLogin(protocol, who));
      assert.equal(res.userCreated, true);
      assert.equal(res.user?.email, who.email);
      assert.equal(res.user?.role, Role.EDITOR);
      assert.equal(res.user?.state, UserState.ACTIVE);
      assert.equal(res.user?.hasPassword, false);
      assert.equal(res.user?.displayName, who.name);
      assert.equal(res.linkedIdentity?.subject, who.sub);
      assert.equal(res.linkedIdentity?.issuer, issuer);
      assert.equal(res.linkedIdentity?.providerId, providerId);
      assert.equal(res.linkedIdentity?.email, who.email);
      const tokens = res.tokens!;
      assert.equal(tokens.tokenType, "Bearer");
      // The access token works (ListSessions needs credentials) and the session says how it started.
      const sessions = ok(await call(protocol, AuthService.method.listSessions, {}, tokens.accessToken)).sessions;
      assert.equal(sessions.length, 1);
      assert.equal(sessions[0]!.id, tokens.sessionId);
      assert.equal(sessions[0]!.authMethod, AuthMethod.OIDC);
      assert.equal(sessions[0]!.oidcProviderId, providerId);
      // The refresh token rotates like any other.
      const refreshed = ok(await call(protocol, AuthService.method.refreshToken, { refreshToken: tokens.refreshToken }));
      assert.equal(refreshed.tokens?.sessionId, tokens.sessionId);
      const userId = res.user?.id;
      const created = (await events("identity.user.created")).find((e) => e.aggregate_id === userId);
      assert.equal(created?.payload.via, "oidc_jit");
      assert.ok((await events("identity.linked_identity.created")).some((e) => e.aggregate_id === res.linkedIdentity!.id && e.payload.by === "jit"));
      const login = (await events("identity.login.succeeded")).find((e) => e.payload.session_id === tokens.sessionId);
      assert.equal(login?.payload.method, "oidc");
      assert.equal(login?.payload.oidc_provider_id, providerId);
    });

    test("the second login finds the user by the linked identity, even with a new email", async () => {
      const who = person();
      const first = ok(await oidcLogin(protocol, who));
      const renamed = { ...who, email: `renamed-${who.email}` };
      const second = ok(await oidcLogin(protocol, renamed));
      assert.equal(second.userCreated, false);
      assert.equal(second.user?.id, first.user?.id);
      assert.equal(second.linkedIdentity?.id, first.linkedIdentity?.id);
      assert.equal(second.linkedIdentity?.email, renamed.email);
      assert.notEqual(second.tokens?.sessionId, first.tokens?.sessionId);
    });

    test("an existing user with the verified email is linked; an owner is not; an invited user becomes active", async () => {
      const existing = await newUser("viewer", { password: true });
      const linked = ok(await oidcLogin(protocol, { ...person(), email: existing.email.toUpperCase() }));
      assert.equal(linked.userCreated, false);
      assert.equal(linked.user?.id, existing.id);
      assert.equal(linked.user?.role, Role.VIEWER);
      assert.ok((await events("identity.linked_identity.created")).some((e) => e.aggregate_id === linked.linkedIdentity!.id && e.payload.by === "email"));

      const owner = await newUser("owner", { password: true });
      const refused = await oidcLogin(protocol, { ...person(), email: owner.email });
      assert.deepEqual(failure(refused), { code: "PERMISSION_DENIED", reason: "OIDC_USER_NOT_ALLOWED" });

      const invited = await newUser("editor");
      await harness.db.raw("update app_user set status = 'invited' where tenant_id = ? and id = ?", [tenantId, invited.id]);
      const activated = ok(await oidcLogin(protocol, { ...person(), email: invited.email }));
      assert.equal(activated.user?.id, invited.id);
      assert.equal(activated.user?.state, UserState.ACTIVE);
      assert.ok((await events("identity.user.activated")).some((e) => e.aggregate_id === invited.id));
    });

    test("a disallowed email domain or an unverified email is refused, and the failure is audited", async () => {
      const outsider = person("elsewhere.example");
      const denied = await oidcLogin(protocol, outsider);
      assert.deepEqual(failure(denied), { code: "PERMISSION_DENIED", reason: "OIDC_USER_NOT_ALLOWED" });
      assert.match(!denied.ok ? denied.message : "", /elsewhere\.example/);
      const failed = (await events("identity.login.failed")).find((e) => e.payload.subject === outsider.sub);
      assert.equal(failed?.payload.reason, "OIDC_USER_NOT_ALLOWED");
      assert.equal(failed?.payload.method, "oidc");

      const unverified = await oidcLogin(protocol, { ...person(), email_verified: false });
      assert.deepEqual(failure(unverified), { code: "UNAUTHENTICATED", reason: "OIDC_ID_TOKEN_INVALID" });
      const noEmail = await oidcLogin(protocol, { sub: `sub-${randomUUID()}` });
      assert.deepEqual(failure(noEmail), { code: "UNAUTHENTICATED", reason: "OIDC_ID_TOKEN_INVALID" });
    });

    test("without just-in-time provisioning an unknown email is refused", async () => {
      const strict = ok(await createProvider(protocol, admin.token, { displayName: "Strict SSO", jitProvisioningEnabled: false }));
      const refused = await oidcLogin(protocol, person(), { provider: strict.id });
      assert.deepEqual(failure(refused), { code: "PERMISSION_DENIED", reason: "OIDC_USER_NOT_ALLOWED" });
      // But the aud of the ID token is that provider's client id, and an existing user logs in.
      const existing = await newUser("editor");
      ok(await oidcLogin(protocol, { ...person(), email: existing.email }, { provider: strict.id }));
    });

    test("a state works once: a replay, an unknown state, an expired one or another redirect URI are refused", async () => {
      const who = person();
      const { callback } = await startAndAuthorize(protocol, who);
      const complete = (state: string, redirectUri = REDIRECT_URI) =>
        call(protocol, AuthService.method.completeOidcLogin, { state, code: callback.code, redirectUri });
      ok(await complete(callback.state));
      assert.deepEqual(failure(await complete(callback.state)), { code: "INVALID_ARGUMENT", reason: "OIDC_STATE_INVALID" });
      assert.deepEqual(failure(await complete(`x${callback.state.slice(1)}`)), { code: "INVALID_ARGUMENT", reason: "OIDC_STATE_INVALID" });

      const late = await startAndAuthorize(protocol, person());
      await harness.db.raw("update oidc_login_attempt set created_at = now() - interval '20 minutes', expires_at = now() - interval '10 minutes' where tenant_id = ?", [tenantId]);
      const expired = await call(protocol, AuthService.method.completeOidcLogin, { state: late.callback.state, code: late.callback.code, redirectUri: REDIRECT_URI });
      assert.deepEqual(failure(expired), { code: "INVALID_ARGUMENT", reason: "OIDC_STATE_INVALID" });

      const elsewhere = await startAndAuthorize(protocol, person());
      const moved = await call(protocol, AuthService.method.completeOidcLogin, { state: elsewhere.callback.state, code: elsewhere.callback.code, redirectUri: "https://evil.example.test/cb" });
      assert.deepEqual(failure(moved), { code: "INVALID_ARGUMENT", reason: "OIDC_STATE_INVALID" });
      // Consumed by that failed attempt too: the right redirect URI does not revive it.
      const retried = await call(protocol, AuthService.method.completeOidcLogin, { state: elsewhere.callback.state, code: elsewhere.callback.code, redirectUri: REDIRECT_URI });
      assert.deepEqual(failure(retried), { code: "INVALID_ARGUMENT", reason: "OIDC_STATE_INVALID" });
    });

    test("ID tokens with a wrong nonce, issuer, audience or expiry are refused", async () => {
      const cases: [string, (p: Record<string, unknown>) => void][] = [
        ["nonce", (p) => void (p.nonce = "not-the-nonce-of-this-login")],
        ["issuer", (p) => void (p.iss = "http://127.0.0.1:1/other-issuer")],
        ["audience", (p) => void (p.aud = "some-other-client")],
        ["expiry", (p) => {
          const now = Math.floor(Date.now() / 1000);
          Object.assign(p, { iat: now - 7200, nbf: now - 7200, exp: now - 3600 });
        }],
      ];
      try {
        for (const [what, change] of cases) {
          tamper = change;
          const res = await oidcLogin(protocol, person());
          assert.deepEqual(failure(res), { code: "UNAUTHENTICATED", reason: "OIDC_ID_TOKEN_INVALID" }, what);
        }
      } finally {
        resetHooks();
      }
    });

    test("ID tokens signed by another key, unsigned (alg none) or with HMAC are refused", async () => {
      // The provider emits beforeResponse synchronously, so the replacement tokens are signed synchronously.
      const other = generateKeyPairSync("rsa", { modulusLength: 2048 });
      const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
      const jwt = (header: Record<string, unknown>, payload: Record<string, unknown>, sign: (input: string) => string) => {
        const input = `${b64(header)}.${b64(payload)}`;
        return `${input}.${sign(input)}`;
      };
      const cases: [string, (payload: Record<string, unknown>, kid: string | undefined) => string][] = [
        ["another key, same kid", (p, kid) => jwt({ alg: "RS256", typ: "JWT", kid }, p, (i) => cryptoSign("sha256", Buffer.from(i), other.privateKey).toString("base64url"))],
        ["alg none", (p, kid) => jwt({ alg: "none", typ: "JWT", kid }, p, () => "")],
        ["HS256 keyed with the client secret", (p, kid) => jwt({ alg: "HS256", typ: "JWT", kid }, p, (i) => createHmac("sha256", CLIENT_SECRET).update(i).digest("base64url"))],
      ];
      try {
        for (const [what, make] of cases) {
          replaceResponse = (response) => {
            const body = response.body as Record<string, unknown>;
            const original = body.id_token as string;
            const header = decodeProtectedHeader(original);
            body.id_token = make(decodeJwt(original), header.kid);
          };
          const res = await oidcLogin(protocol, person());
          assert.deepEqual(failure(res), { code: "UNAUTHENTICATED", reason: "OIDC_ID_TOKEN_INVALID" }, what);
        }
      } finally {
        resetHooks();
      }
    });

    test("PKCE: the URL carries an S256 challenge of the verifier we send; the provider refuses a mismatch", async () => {
      const { url, callback } = await startAndAuthorize(protocol, person());
      assert.equal(url.searchParams.get("code_challenge_method"), "S256");
      assert.equal(url.searchParams.get("response_type"), "code");
      assert.equal(url.searchParams.get("client_id"), CLIENT_ID);
      assert.deepEqual(url.searchParams.get("scope")?.split(" "), ["openid", "email", "profile"]);
      assert.ok((url.searchParams.get("nonce") ?? "").length >= 43);
      ok(await call(protocol, AuthService.method.completeOidcLogin, { state: callback.state, code: callback.code, redirectUri: REDIRECT_URI }));
      assert.ok(lastCodeVerifier && /^[A-Za-z0-9_-]{43,128}$/.test(lastCodeVerifier));
      assert.equal(createHash("sha256").update(lastCodeVerifier).digest("base64url"), url.searchParams.get("code_challenge"));

      // An intercepted authorization whose challenge is not ours: the provider refuses our verifier.
      const mismatch = await oidcLogin(protocol, person(), {
        editUrl: (u) => u.searchParams.set("code_challenge", createHash("sha256").update("another-verifier-".repeat(3)).digest("base64url")),
      });
      assert.deepEqual(failure(mismatch), { code: "UNAVAILABLE", reason: "OIDC_PROVIDER_ERROR" });
    });

    test("two callbacks with the same state at once: exactly one logs in", async () => {
      const { callback } = await startAndAuthorize(protocol, person());
      const complete = () => call(protocol, AuthService.method.completeOidcLogin, { state: callback.state, code: callback.code, redirectUri: REDIRECT_URI });
      const outcomes = (await Promise.all([complete(), complete()])).map((o) => failure(o));
      assert.deepEqual(
        outcomes.sort((a, b) => a.code.localeCompare(b.code)),
        [
          { code: "INVALID_ARGUMENT", reason: "OIDC_STATE_INVALID" },
          { code: "OK", reason: undefined },
        ],
      );
    });

    test("just-in-time creation respects the tenant's max_users quota", async () => {
      const quotaSlug = uniqueSlug("oidc-quota");
      const quotaTenant = await createTenant(harness.db, { slug: quotaSlug, quotas: { max_users: 1 } });
      const quotaAdmin = await createUser(harness.db, quotaTenant, "admin");
      const p = ok(await call(protocol, IdentityService.method.createOidcProvider, {
        oidcProvider: { displayName: "SSO", issuerUri: issuer, clientId: CLIENT_ID, jitProvisioningEnabled: true, enabled: true },
      }, await harness.token(quotaTenant, quotaAdmin, "admin")));
      idClaims = person();
      const started = ok(await call(protocol, AuthService.method.startOidcLogin, { tenantSlug: quotaSlug, oidcProviderId: p.id, redirectUri: REDIRECT_URI }));
      const cb = await browse(started.authorizationUrl);
      const res = await call(protocol, AuthService.method.completeOidcLogin, { state: cb.state, code: cb.code, redirectUri: REDIRECT_URI });
      assert.deepEqual(failure(res), { code: "RESOURCE_EXHAUSTED", reason: "QUOTA_EXCEEDED" });
    });

    test("a single-sign-on-only tenant: login options say so, and a correct password is refused", async () => {
      const ssoSlug = uniqueSlug("oidc-sso");
      const ssoTenant = await createTenant(harness.db, { slug: ssoSlug });
      const password = "correct horse battery staple";
      const email = `sso-${randomUUID().slice(0, 8)}@corp.example`;
      await createUser(harness.db, ssoTenant, "editor", { email, passwordHash: await testPasswordHash(password) });
      await harness.db.raw(`update tenant set settings = settings || '{"password_login_disabled": true}'::jsonb where id = ?`, [ssoTenant]);
      const options = ok(await call(protocol, AuthService.method.getLoginOptions, { tenantSlug: ssoSlug }));
      assert.equal(options.passwordLoginEnabled, false);
      const right = await call(protocol, AuthService.method.login, { tenantSlug: ssoSlug, email, password });
      assert.deepEqual(failure(right), { code: "FAILED_PRECONDITION", reason: "PASSWORD_LOGIN_DISABLED" });
      // A wrong password learns nothing about the tenant's settings: the one answer of every failed login.
      const wrong = await call(protocol, AuthService.method.login, { tenantSlug: ssoSlug, email, password: `${password}x` });
      assert.deepEqual(failure(wrong), { code: "UNAUTHENTICATED", reason: "LOGIN_FAILED" });
    });

    test("a deactivated user and a suspended tenant are refused", async () => {
      const who = person();
      const first = ok(await oidcLogin(protocol, who));
      await harness.db.raw("update app_user set status = 'deactivated' where tenant_id = ? and id = ?", [tenantId, first.user!.id]);
      assert.deepEqual(failure(await oidcLogin(protocol, who)), { code: "PERMISSION_DENIED", reason: "OIDC_USER_NOT_ALLOWED" });

      const otherSlug = uniqueSlug("oidc-susp");
      const otherTenant = await createTenant(harness.db, { slug: otherSlug });
      const otherAdmin = await createUser(harness.db, otherTenant, "admin");
      const p = ok(await call(protocol, IdentityService.method.createOidcProvider, {
        oidcProvider: { displayName: "SSO", issuerUri: issuer, clientId: CLIENT_ID, jitProvisioningEnabled: true, enabled: true },
      }, await harness.token(otherTenant, otherAdmin, "admin")));
      await harness.db.raw("update tenant set status = 'suspended', suspended_at = now() where id = ?", [otherTenant]);
      idClaims = person();
      const started = ok(await call(protocol, AuthService.method.startOidcLogin, { tenantSlug: otherSlug, oidcProviderId: p.id, redirectUri: REDIRECT_URI }));
      const cb = await browse(started.authorizationUrl);
      const res = await call(protocol, AuthService.method.completeOidcLogin, { state: cb.state, code: cb.code, redirectUri: REDIRECT_URI });
      assert.deepEqual(failure(res), { code: "UNAUTHENTICATED", reason: "TENANT_SUSPENDED" });
    });

    test("Logout with only the refresh token of an OIDC session ends it", async () => {
      const tokens = ok(await oidcLogin(protocol, person())).tokens!;
      ok(await call(protocol, AuthService.method.logout, { refreshToken: tokens.refreshToken }));
      assert.deepEqual(failure(await call(protocol, AuthService.method.refreshToken, { refreshToken: tokens.refreshToken })), {
        code: "UNAUTHENTICATED",
        reason: "CREDENTIALS_REVOKED",
      });
    });

    test("linked identities: the user or an admin lists them; unlinking never leaves a user without a way to log in", async () => {
      const jit = ok(await oidcLogin(protocol, person()));
      const jitToken = await harness.token(tenantId, jit.user!.id, "editor");
      const own = ok(await call(protocol, IdentityService.method.listLinkedIdentities, {}, jitToken)).linkedIdentities;
      assert.deepEqual(own.map((i) => i.id), [jit.linkedIdentity!.id]);
      const byAdmin = ok(await call(protocol, IdentityService.method.listLinkedIdentities, { userId: jit.user!.id }, admin.token)).linkedIdentities;
      assert.deepEqual(byAdmin.map((i) => i.id), [jit.linkedIdentity!.id]);
      const viewer = await newUser("viewer");
      assert.deepEqual(failure(await call(protocol, IdentityService.method.listLinkedIdentities, { userId: jit.user!.id }, viewer.token)), {
        code: "PERMISSION_DENIED",
        reason: "PERMISSION_INSUFFICIENT",
      });
      assert.equal(failure(await call(protocol, IdentityService.method.deleteLinkedIdentity, { linkedIdentityId: jit.linkedIdentity!.id }, viewer.token)).code, "NOT_FOUND");
      // The JIT user has no password: their only identity stays.
      assert.equal(failure(await call(protocol, IdentityService.method.deleteLinkedIdentity, { linkedIdentityId: jit.linkedIdentity!.id }, jitToken)).code, "FAILED_PRECONDITION");

      // A user with a password may unlink; the next login links again (by verified email).
      const withPassword = await newUser("editor", { password: true });
      const who = { ...person(), email: withPassword.email };
      const linked = ok(await oidcLogin(protocol, who));
      ok(await call(protocol, IdentityService.method.deleteLinkedIdentity, { linkedIdentityId: linked.linkedIdentity!.id }, withPassword.token));
      const gone = (await events("identity.linked_identity.deleted")).find((e) => e.aggregate_id === linked.linkedIdentity!.id);
      assert.equal(gone?.actor_id, withPassword.id);
      assert.deepEqual(ok(await call(protocol, IdentityService.method.listLinkedIdentities, {}, withPassword.token)).linkedIdentities, []);
      const relinked = ok(await oidcLogin(protocol, who));
      assert.equal(relinked.user?.id, withPassword.id);
      assert.notEqual(relinked.linkedIdentity?.id, linked.linkedIdentity?.id);

      // Another tenant's admin sees nothing of this tenant.
      const other = await harness.tenantWith(["admin"]);
      assert.equal(failure(await call(protocol, IdentityService.method.listLinkedIdentities, { userId: jit.user!.id }, other.users[0]!.token)).code, "NOT_FOUND");
      assert.equal(failure(await call(protocol, IdentityService.method.deleteLinkedIdentity, { linkedIdentityId: relinked.linkedIdentity!.id }, other.users[0]!.token)).code, "NOT_FOUND");
    });

    test("provider management: admins only, tenant-scoped, etags, the client secret never returned", async () => {
      const editor = await newUser("editor");
      const viewer = await newUser("viewer");
      for (const token of [editor.token, viewer.token]) {
        assert.equal(failure(await createProvider(protocol, token, {})).code, "PERMISSION_DENIED");
        assert.equal(failure(await call(protocol, IdentityService.method.getOidcProvider, { oidcProviderId: providerId }, token)).code, "PERMISSION_DENIED");
        assert.equal(failure(await call(protocol, IdentityService.method.listOidcProviders, {}, token)).code, "PERMISSION_DENIED");
        assert.equal(
          failure(await call(protocol, IdentityService.method.updateOidcProvider, { oidcProvider: { id: providerId, displayName: "x" }, updateMask: { paths: ["display_name"] } }, token)).code,
          "PERMISSION_DENIED",
        );
        assert.equal(failure(await call(protocol, IdentityService.method.deleteOidcProvider, { oidcProviderId: providerId }, token)).code, "PERMISSION_DENIED");
      }

      const created = ok(await createProvider(protocol, admin.token, { displayName: "Managed", clientSecret: "top-secret-value-123", scopes: ["email", "groups"] }));
      assert.equal(created.clientSecret, "");
      assert.equal(created.hasClientSecret, true);
      assert.deepEqual(created.scopes, ["email", "groups"]);
      assert.equal(created.jitDefaultRole, Role.VIEWER);
      const { rows } = await harness.db.raw<{ rows: { client_secret: string }[] }>("select client_secret from oidc_provider where id = ?", [created.id]);
      assert.match(rows[0]!.client_secret, /^aes256gcm:v1:/);
      assert.ok(!rows[0]!.client_secret.includes("top-secret-value-123"));
      const got = ok(await call(protocol, IdentityService.method.getOidcProvider, { oidcProviderId: created.id }, admin.token));
      assert.equal(got.clientSecret, "");
      assert.equal(got.etag, created.etag);
      const listed = ok(await call(protocol, IdentityService.method.listOidcProviders, { pageSize: 1 }, admin.token));
      assert.equal(listed.oidcProviders.length, 1);
      assert.notEqual(listed.nextPageToken, "");
      assert.ok(listed.oidcProviders.every((p) => p.clientSecret === ""));

      const duplicate = await createProvider(protocol, admin.token, { clientId: CLIENT_ID });
      assert.equal(failure(duplicate).code, "ALREADY_EXISTS");
      // Bad input names the field (BadRequest details, read here over gRPC).
      const insecure = await harness.call(protocol, IdentityService.method.createOidcProvider, {
        oidcProvider: { displayName: "Plain HTTP", issuerUri: "http://idp.example.test", clientId: "c" },
      }, admin.token);
      assert.equal(!insecure.ok && insecure.code, "INVALID_ARGUMENT");
      if (protocol === "grpc") assert.deepEqual(!insecure.ok && insecure.fields, ["oidc_provider.issuer_uri"]);
      const blank = await harness.call(protocol, IdentityService.method.updateOidcProvider, {
        oidcProvider: { id: created.id, displayName: "  " },
        updateMask: { paths: ["display_name"] },
      }, admin.token);
      assert.equal(!blank.ok && blank.code, "INVALID_ARGUMENT");
      if (protocol === "grpc") assert.deepEqual(!blank.ok && blank.fields, ["oidc_provider.display_name"]);
      const unreachable = await createProvider(protocol, admin.token, { issuerUri: "http://127.0.0.1:1" });
      assert.deepEqual(failure(unreachable), { code: "UNAVAILABLE", reason: "OIDC_PROVIDER_ERROR" });

      const stale = await call(protocol, IdentityService.method.updateOidcProvider, {
        oidcProvider: { id: created.id, displayName: "Renamed", etag: "999" },
        updateMask: { paths: ["display_name"] },
      }, admin.token);
      assert.deepEqual(failure(stale), { code: "ABORTED", reason: "ETAG_MISMATCH" });
      const renamed = ok(await call(protocol, IdentityService.method.updateOidcProvider, {
        oidcProvider: { id: created.id, displayName: "Renamed", enabled: false, clientSecret: "", etag: created.etag },
        updateMask: { paths: ["display_name", "enabled", "client_secret"] },
      }, admin.token));
      assert.equal(renamed.displayName, "Renamed");
      assert.equal(renamed.enabled, false);
      assert.equal(renamed.hasClientSecret, false);
      assert.notEqual(renamed.etag, created.etag);
      // Disabled: not on the login page, and a login cannot start with it.
      const options = ok(await call(protocol, AuthService.method.getLoginOptions, { tenantSlug: slug }));
      assert.ok(options.providers.some((p) => p.oidcProviderId === providerId));
      assert.ok(!options.providers.some((p) => p.oidcProviderId === created.id));
      assert.equal(options.passwordLoginEnabled, true);
      assert.equal(failure(await call(protocol, AuthService.method.startOidcLogin, { tenantSlug: slug, oidcProviderId: created.id, redirectUri: REDIRECT_URI })).code, "NOT_FOUND");

      // Another tenant's admin neither sees nor changes it.
      const other = await harness.tenantWith(["admin"]);
      const otherToken = other.users[0]!.token;
      assert.equal(failure(await call(protocol, IdentityService.method.getOidcProvider, { oidcProviderId: created.id }, otherToken)).code, "NOT_FOUND");
      assert.equal(
        failure(await call(protocol, IdentityService.method.updateOidcProvider, { oidcProvider: { id: created.id, displayName: "x" }, updateMask: { paths: ["display_name"] } }, otherToken)).code,
        "NOT_FOUND",
      );
      assert.equal(failure(await call(protocol, IdentityService.method.deleteOidcProvider, { oidcProviderId: created.id }, otherToken)).code, "NOT_FOUND");
      assert.deepEqual(ok(await call(protocol, IdentityService.method.listOidcProviders, {}, otherToken)).oidcProviders, []);
      assert.equal(failure(await call(protocol, AuthService.method.startOidcLogin, { tenantSlug: uniqueSlug("nosuch"), oidcProviderId: providerId, redirectUri: REDIRECT_URI })).code, "NOT_FOUND");

      ok(await call(protocol, IdentityService.method.deleteOidcProvider, { oidcProviderId: created.id, etag: renamed.etag }, admin.token));
      assert.equal(failure(await call(protocol, IdentityService.method.getOidcProvider, { oidcProviderId: created.id }, admin.token)).code, "NOT_FOUND");
      const audit = (await harness.events(tenantId)).filter((e) => e.aggregate_id === created.id).map((e) => [e.event_type, e.actor_id]);
      assert.deepEqual(audit, [["identity.oidc_provider.created", admin.id], ["identity.oidc_provider.updated", admin.id], ["identity.oidc_provider.deleted", admin.id]]);
      const secretsInEvents = (await harness.events(tenantId)).filter((e) => JSON.stringify(e.payload).includes("top-secret-value-123"));
      assert.deepEqual(secretsInEvents, []);
    });

    test("providers and linked identities page with tokens bound to the list", async () => {
      const pageTenant = await harness.tenantWith(["admin"]);
      const pageAdmin = pageTenant.users[0]!;
      const names = ["Bravo", "alpha", "Charlie"];
      for (const displayName of names) {
        ok(await call(protocol, IdentityService.method.createOidcProvider, {
          oidcProvider: { displayName, issuerUri: issuer, clientId: `c-${displayName}`, enabled: true },
        }, pageAdmin.token));
      }
      const seen: string[] = [];
      let pageToken = "";
      do {
        const page = ok(await call(protocol, IdentityService.method.listOidcProviders, { pageSize: 2, pageToken }, pageAdmin.token));
        seen.push(...page.oidcProviders.map((p) => p.displayName));
        pageToken = page.nextPageToken;
      } while (pageToken);
      assert.deepEqual(seen, ["alpha", "Bravo", "Charlie"]);

      // Names JavaScript lowers differently from PostgreSQL ("İ"): page by page, the same order as one page, each once.
      for (const displayName of ["İbis", "Ivy", "Iz"]) {
        ok(await call(protocol, IdentityService.method.createOidcProvider, {
          oidcProvider: { displayName, issuerUri: issuer, clientId: `c-${displayName}`, enabled: true },
        }, pageAdmin.token));
      }
      const walked: string[] = [];
      do {
        const page = ok(await call(protocol, IdentityService.method.listOidcProviders, { pageSize: 1, pageToken }, pageAdmin.token));
        walked.push(...page.oidcProviders.map((p) => p.displayName));
        pageToken = page.nextPageToken;
      } while (pageToken);
      const onePage = ok(await call(protocol, IdentityService.method.listOidcProviders, { pageSize: 100 }, pageAdmin.token));
      assert.deepEqual(walked, onePage.oidcProviders.map((p) => p.displayName));
      assert.equal(walked.length, 6);
      const bad = await call(protocol, IdentityService.method.listOidcProviders, { pageToken: "bm90LWEtdG9rZW4" }, pageAdmin.token);
      assert.deepEqual(failure(bad), { code: "INVALID_ARGUMENT", reason: "PAGE_TOKEN_INVALID" });
      const firstProviders = ok(await call(protocol, IdentityService.method.listOidcProviders, { pageSize: 2 }, pageAdmin.token));
      await assertForgedPageTokensRefused(firstProviders.nextPageToken, (token) =>
        harness.call(protocol, IdentityService.method.listOidcProviders, { pageSize: 2, pageToken: token }, pageAdmin.token),
      );

      // One user linked through two providers of this tenant.
      const user = await newUser("editor", { password: true });
      const second = ok(await createProvider(protocol, admin.token, { displayName: "Second SSO" }));
      const a = ok(await oidcLogin(protocol, { ...person(), email: user.email }));
      const b = ok(await oidcLogin(protocol, { ...person(), email: user.email }, { provider: second.id }));
      const first = ok(await call(protocol, IdentityService.method.listLinkedIdentities, { pageSize: 1 }, user.token));
      assert.deepEqual(first.linkedIdentities.map((i) => i.id), [a.linkedIdentity!.id]);
      const rest = ok(await call(protocol, IdentityService.method.listLinkedIdentities, { pageSize: 1, pageToken: first.nextPageToken }, user.token));
      assert.deepEqual(rest.linkedIdentities.map((i) => i.id), [b.linkedIdentity!.id]);
      assert.equal(rest.nextPageToken, "");
      // The token belongs to this user's list.
      const elsewhere = await call(protocol, IdentityService.method.listLinkedIdentities, { pageSize: 1, pageToken: first.nextPageToken }, admin.token);
      assert.deepEqual(failure(elsewhere), { code: "INVALID_ARGUMENT", reason: "PAGE_TOKEN_INVALID" });
      await assertForgedPageTokensRefused(first.nextPageToken, (token) =>
        harness.call(protocol, IdentityService.method.listLinkedIdentities, { pageSize: 1, pageToken: token }, user.token),
      );
    });

    test("deleting a provider deletes the identities linked through it; the users stay", async () => {
      const temp = ok(await createProvider(protocol, admin.token, { displayName: "Temporary", jitProvisioningEnabled: true }));
      const res = ok(await oidcLogin(protocol, person(), { provider: temp.id }));
      ok(await call(protocol, IdentityService.method.deleteOidcProvider, { oidcProviderId: temp.id }, admin.token));
      const userToken = await harness.token(tenantId, res.user!.id, "viewer");
      assert.deepEqual(ok(await call(protocol, IdentityService.method.listLinkedIdentities, {}, userToken)).linkedIdentities, []);
      ok(await call(protocol, IdentityService.method.getUser, { userId: res.user!.id }, admin.token));
      const deleted = (await events("identity.oidc_provider.deleted")).find((e) => e.aggregate_id === temp.id);
      assert.equal(deleted?.payload.unlinked_identities, 1);
    });
  });
}
