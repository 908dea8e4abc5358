import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { CREDENTIAL_CACHE_TTL_MS, loadConfig, startService, type RunningService } from "@promptcraft/platform";
import { issueAccessToken, type KeyRing } from "@promptcraft/identity";
import { contentService } from "@promptcraft/content";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { AuthService } from "@promptcraft/proto/promptcraft/identity/v1/auth_service_pb";
import { createTenant, createUser, uniqueSlug } from "@promptcraft/testing";
import { IdentityHarness, testServiceEnv } from "./identity-e2e-helpers.js";
import { callUnary, testPasswordHash, type Outcome, type Protocol } from "./login-helpers.js";

/**
 * Access tokens of an ended session are refused by every service within the credential cache bound
 * (issue 3, items 4 and 7): after Logout, RevokeSession, ChangePassword (the other sessions),
 * ResetPassword and refresh-token reuse, the session's still unexpired access token is refused by
 * identity and by content (a real service started like in production, reading the session's status
 * with its own database role), over gRPC and Connect. Other sessions keep working.
 */

const PROTOCOLS: readonly Protocol[] = ["grpc", "connect"];
const PASSWORD = "correct horse battery staple";
const NEW_PASSWORD = "another long passphrase 42";
/** How long a refusal may take to show after a change: the cache bound plus slack for a slow machine. */
const POLL_DEADLINE_MS = CREDENTIAL_CACHE_TTL_MS + 10_000;

let identity: RunningService;
let content: RunningService;
let tenantId: string;
let slug: string;
let passwordHash: string;

const harness = new IdentityHarness();

beforeAll(async () => {
  await harness.start();
  identity = harness.identity;
  content = await startService(contentService, loadConfig(contentService.config, { ...testServiceEnv(), IDENTITY_URL: harness.url }));
  slug = uniqueSlug("revoke");
  tenantId = await createTenant(identity.deps.db, { slug });
  passwordHash = await testPasswordHash(PASSWORD);
});
afterAll(async () => {
  await content?.close();
  await harness.close();
});

async function newUser(role: "admin" | "editor" = "editor"): Promise<{ id: string; email: string }> {
  const email = `u-${randomUUID().slice(0, 8)}@example.test`;
  return { id: await createUser(identity.deps.db, tenantId, role, { email, passwordHash }), email };
}

function ok<T>(outcome: Outcome<T>, what: string): T {
  if (!outcome.ok) assert.fail(`${what}: expected success, got ${outcome.code} ${outcome.reason ?? ""}`);
  return outcome.response;
}

async function login(protocol: Protocol, email: string, password = PASSWORD) {
  const res = ok(await callUnary(protocol, identity, AuthService.method.login, { tenantSlug: slug, email, password }), "login");
  return res.tokens!;
}

/** An authenticated call to identity and one to content; each outcome reduced to accepted or the refusal. */
async function useToken(protocol: Protocol, token: string): Promise<{ identity: string; content: string }> {
  const verdict = (o: Outcome<unknown>) => (o.ok || o.code !== "UNAUTHENTICATED" ? "accepted" : `UNAUTHENTICATED ${o.reason ?? ""}`);
  const [own, other] = await Promise.all([
    callUnary(protocol, identity, AuthService.method.listSessions, {}, token),
    // Past authentication, content answers NOT_FOUND or UNIMPLEMENTED: either way the token was accepted.
    callUnary(protocol, content, ContentService.method.getEntity, { entityId: randomUUID() }, token),
  ]);
  return { identity: verdict(own), content: verdict(other) };
}

/** Uses the token until both services give `expected`, or the deadline; returns the last verdicts. */
async function pollUntil(protocol: Protocol, token: string, expected: string): Promise<{ identity: string; content: string }> {
  const deadline = Date.now() + POLL_DEADLINE_MS;
  for (;;) {
    const seen = await useToken(protocol, token);
    if ((seen.identity === expected && seen.content === expected) || Date.now() > deadline) return seen;
    await new Promise((r) => setTimeout(r, 200));
  }
}

const ACCEPTED = { identity: "accepted", content: "accepted" };
const REVOKED = { identity: "UNAUTHENTICATED CREDENTIALS_REVOKED", content: "UNAUTHENTICATED CREDENTIALS_REVOKED" };

describe("access tokens of ended sessions", { concurrent: true }, () => {
  for (const protocol of PROTOCOLS) {
    test(`${protocol}: after Logout the session's access token is refused by identity and content`, async () => {
      const user = await newUser();
      const tokens = await login(protocol, user.email);
      assert.deepEqual(await useToken(protocol, tokens.accessToken), ACCEPTED, "before logout");
      ok(await callUnary(protocol, identity, AuthService.method.logout, {}, tokens.accessToken), "logout");
      assert.deepEqual(await pollUntil(protocol, tokens.accessToken, REVOKED.content), REVOKED);
    });

    test(`${protocol}: after RevokeSession that session's token is refused; the user's other session works`, async () => {
      const user = await newUser();
      const revoked = await login(protocol, user.email);
      const kept = await login(protocol, user.email);
      assert.deepEqual(await useToken(protocol, revoked.accessToken), ACCEPTED, "before revocation");
      ok(await callUnary(protocol, identity, AuthService.method.revokeSession, { sessionId: revoked.sessionId }, kept.accessToken), "revoke");
      assert.deepEqual(await pollUntil(protocol, revoked.accessToken, REVOKED.content), REVOKED);
      assert.deepEqual(await useToken(protocol, kept.accessToken), ACCEPTED, "the other session");
    });

    test(`${protocol}: after ChangePassword the other sessions' tokens are refused, the current one works`, async () => {
      const user = await newUser();
      const other = await login(protocol, user.email);
      const current = await login(protocol, user.email);
      assert.deepEqual(await useToken(protocol, other.accessToken), ACCEPTED, "before the change");
      ok(
        await callUnary(protocol, identity, AuthService.method.changePassword, { currentPassword: PASSWORD, newPassword: NEW_PASSWORD }, current.accessToken),
        "change password",
      );
      assert.deepEqual(await pollUntil(protocol, other.accessToken, REVOKED.content), REVOKED);
      assert.deepEqual(await useToken(protocol, current.accessToken), ACCEPTED, "the session that changed it");
    });

    test(`${protocol}: after ResetPassword every session's token is refused`, async () => {
      const admin = await newUser("admin");
      const user = await newUser();
      const adminTokens = await login(protocol, admin.email);
      const tokens = await login(protocol, user.email);
      assert.deepEqual(await useToken(protocol, tokens.accessToken), ACCEPTED, "before the reset");
      ok(await callUnary(protocol, identity, AuthService.method.resetPassword, { userId: user.id, newPassword: NEW_PASSWORD }, adminTokens.accessToken), "reset");
      assert.deepEqual(await pollUntil(protocol, tokens.accessToken, REVOKED.content), REVOKED);
    });

    test(`${protocol}: after a refresh token is reused, the family's newest access token is refused too`, async () => {
      const user = await newUser();
      const first = await login(protocol, user.email);
      const refreshed = ok(await callUnary(protocol, identity, AuthService.method.refreshToken, { refreshToken: first.refreshToken }), "refresh").tokens!;
      assert.deepEqual(await useToken(protocol, refreshed.accessToken), ACCEPTED, "before the reuse");
      const reuse = await callUnary(protocol, identity, AuthService.method.refreshToken, { refreshToken: first.refreshToken });
      assert.equal(reuse.ok ? "OK" : reuse.reason, "REFRESH_TOKEN_REUSED");
      assert.deepEqual(await pollUntil(protocol, refreshed.accessToken, REVOKED.content), REVOKED);
    });
  }

  test("a token whose session id is not identity's (not a UUID) is refused", async () => {
    const user = await newUser();
    const tokens = await login("grpc", user.email);
    // Same key, same claims but `sid`: only a holder of identity's signing key could make this.
    const forged = await issueAccessToken(identity.state as KeyRing, { issuer: "promptcraft-identity", ttlS: 900 }, {
      tenantId,
      userId: user.id,
      role: "editor",
      sessionId: "not-a-session",
    });
    assert.deepEqual(await useToken("grpc", forged.token), {
      identity: "UNAUTHENTICATED CREDENTIALS_INVALID",
      content: "UNAUTHENTICATED CREDENTIALS_INVALID",
    });
    assert.deepEqual(await useToken("grpc", tokens.accessToken), ACCEPTED);
  });
});
