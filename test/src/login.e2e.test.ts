import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import {
  accessTokenAuthenticator,
  createLogger,
  loadConfig,
  remoteJwks,
  serve,
  startServer,
  startService,
  TokenVerifier,
  type RunningServer,
  type RunningService,
} from "@promptcraft/platform";
import { identityService } from "@promptcraft/identity";
import { withTenant } from "@promptcraft/db";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { AuthService } from "@promptcraft/proto/promptcraft/identity/v1/auth_service_pb";
import { SessionRevokeReason } from "@promptcraft/proto/promptcraft/identity/v1/resources_pb";
import { createTenant, createUser, uniqueSlug } from "@promptcraft/testing";
import { testServiceEnv } from "./identity-e2e-helpers.js";
import { callUnary, testPasswordHash, type Protocol } from "./login-helpers.js";
import { assertForgedPageTokensRefused } from "./page-tokens.js";
import { failure, unaryCall } from "./rpc-outcomes.js";

/**
 * Password login, refresh-token rotation and reuse detection, logout, sessions and password
 * changes, end to end over gRPC and Connect against a real identity service and database.
 */


const PASSWORD = "correct horse battery staple";
const ENTITY_ID = "6f1c1b1e-8d1a-4a57-9a0f-3f5b8c1d2e4f";
const log = createLogger("test", "silent");

let identity: RunningService;
/** A service that needs credentials and implements nothing: answers UNIMPLEMENTED once authenticated. */
let content: RunningServer;
let tenantId: string;
let slug: string;
let passwordHash: string;

beforeAll(async () => {
  identity = await startService(
    identityService,
    // The account throttle with a small allowance; the address allowance stays the harness's (every test shares 127.0.0.1).
    loadConfig(identityService.config, { ...testServiceEnv(), LOGIN_THROTTLE_ACCOUNT_FAILURES: "3", LOGIN_THROTTLE_BASE_DELAY_S: "30" }),
  );
  const verifier = new TokenVerifier({ fetchJwks: remoteJwks(`http://127.0.0.1:${identity.grpcPort}`), issuer: "promptcraft-identity", log });
  content = await startServer({
    name: "content-stub",
    host: "127.0.0.1",
    grpcPort: 0,
    connectPort: 0,
    log,
    authenticate: accessTokenAuthenticator(verifier),
    services: [serve(ContentService, {})],
  });
  slug = uniqueSlug("login");
  tenantId = await createTenant(identity.deps.db, { slug });
  passwordHash = await testPasswordHash(PASSWORD);
});
afterAll(async () => {
  await content?.close();
  await identity?.close();
});

/** A new active user with {@link PASSWORD}; returns id and email. */
async function newUser(role: "owner" | "admin" | "editor" | "viewer" = "editor"): Promise<{ id: string; email: string }> {
  const email = `u-${randomUUID().slice(0, 8)}@example.test`;
  const id = await createUser(identity.deps.db, tenantId, role, { email, passwordHash });
  return { id, email };
}

const auth = (protocol: Protocol) => ({
  login: (email: string, password = PASSWORD, tenantSlug = slug) =>
    callUnary(protocol, identity, AuthService.method.login, { tenantSlug, email, password }, undefined, { "user-agent": "login-test/1.0" }),
  refresh: (refreshToken: string) => callUnary(protocol, identity, AuthService.method.refreshToken, { refreshToken }),
  logout: (token: string, refreshToken = "") => callUnary(protocol, identity, AuthService.method.logout, { refreshToken }, token),
  listSessions: (token: string, userId = "", showInactive = false) =>
    callUnary(protocol, identity, AuthService.method.listSessions, { userId, showInactive }, token),
  revokeSession: (token: string, sessionId: string) => callUnary(protocol, identity, AuthService.method.revokeSession, { sessionId }, token),
  changePassword: (token: string, currentPassword: string, newPassword: string) =>
    callUnary(protocol, identity, AuthService.method.changePassword, { currentPassword, newPassword }, token),
  resetPassword: (token: string, userId: string, newPassword: string) =>
    callUnary(protocol, identity, AuthService.method.resetPassword, { userId, newPassword }, token),
  content: (token: string) => callUnary(protocol, content, ContentService.method.getEntity, { entityId: ENTITY_ID }, token),
});

function ok<O>(outcome: { ok: true; response: O } | { ok: false; code: string; reason: string | undefined; message: string }): O {
  if (!outcome.ok) assert.fail(`expected success, got ${outcome.code} ${outcome.reason}: ${outcome.message}`);
  return outcome.response;
}

/** Events of the tenant, oldest first (read as identity: the table's owner reads its own appends back in tests only). */
async function events(eventType: string, aggregateId?: string): Promise<{ event_type: string; aggregate_id: string | null; payload: Record<string, unknown> }[]> {
  const db = identity.deps.db;
  const q = db("event").where({ tenant_id: tenantId, event_type: eventType }).orderBy("id");
  if (aggregateId) void q.andWhere({ aggregate_id: aggregateId });
  return q.select("event_type", "aggregate_id", "payload");
}

for (const protocol of ["grpc", "connect"] as const) {
  describe(`password login over ${protocol}`, () => {
    const rpc = auth(protocol);

    test("login returns tokens that other services accept, and the user", async () => {
      const user = await newUser("editor");
      const res = ok(await rpc.login(user.email.toUpperCase()));
      assert.equal(res.user?.id, user.id);
      assert.equal(res.user?.email, user.email);
      assert.equal(res.tokens?.tokenType, "Bearer");
      assert.ok(res.tokens.refreshToken.length >= 43);
      assert.match(res.tokens.sessionId, /^[0-9a-f-]{36}$/);
      // Authenticated at another service: it gets past authentication to UNIMPLEMENTED.
      const call = await rpc.content(res.tokens.accessToken);
      assert.equal(call.ok, false);
      assert.equal(!call.ok && call.code, "UNIMPLEMENTED");
      // And without the token it would be UNAUTHENTICATED.
      const anonymous = await callUnary(protocol, content, ContentService.method.getEntity, { entityId: ENTITY_ID });
      assert.equal(!anonymous.ok && anonymous.code, "UNAUTHENTICATED");
      const sessions = ok(await rpc.listSessions(res.tokens.accessToken));
      assert.equal(sessions.sessions.length, 1);
      assert.equal(sessions.sessions[0]!.id, res.tokens.sessionId);
      // grpc-js sends its own user agent; Connect sends ours.
      assert.ok(sessions.sessions[0]!.userAgent.includes(protocol === "grpc" ? "grpc-node-js" : "login-test/1.0"), sessions.sessions[0]!.userAgent);
      assert.equal(sessions.sessions[0]!.clientAddress, "127.0.0.1");
      const succeeded = await events("identity.login.succeeded", user.id);
      assert.equal(succeeded.length, 1);
      assert.equal(succeeded[0]!.payload.session_id, res.tokens.sessionId);
    });

    test("unknown tenant, unknown email, wrong password and deactivated or deleted users fail alike", async () => {
      const wrong = await newUser();
      const deactivated = await newUser();
      const deleted = await newUser();
      await withTenant(identity.deps.db, { service: "identity", tenantId }, async (trx) => {
        await trx("app_user").where({ id: deactivated.id }).update({ status: "deactivated" });
        await trx("app_user").where({ id: deleted.id }).update({ deleted_at: trx.fn.now() });
      });
      const noPassword = `np-${randomUUID().slice(0, 8)}@example.test`;
      await createUser(identity.deps.db, tenantId, "viewer", { email: noPassword, passwordHash: null });
      const failures = [
        await rpc.login(wrong.email, "not the password"),
        await rpc.login(`nobody-${randomUUID().slice(0, 8)}@example.test`),
        await rpc.login(wrong.email, PASSWORD, uniqueSlug("nosuch")),
        await rpc.login(deactivated.email),
        await rpc.login(deleted.email),
        await rpc.login(noPassword, PASSWORD),
      ];
      const seen = failures.map((f) => (f.ok ? "ok" : `${f.code}|${f.reason}|${f.message}|${f.retryDelayMs}`));
      assert.equal(new Set(seen).size, 1, seen.join("\n"));
      assert.equal(seen[0], "UNAUTHENTICATED|LOGIN_FAILED|login failed: wrong tenant, email or password|undefined");
      // Audited where the tenant is known, with the real reason kept internal.
      const failed = await events("identity.login.failed", wrong.id);
      assert.equal(failed.length, 1);
      assert.equal(failed[0]!.payload.reason, "wrong_password");
      assert.equal((await events("identity.login.failed", deactivated.id))[0]?.payload.reason, "user_deactivated");
    });

    test("repeated failures on an account are refused with RESOURCE_EXHAUSTED and retry info; success resets", async () => {
      const user = await newUser();
      for (let i = 0; i < 3; i++) {
        const f = await rpc.login(user.email, `wrong-${i}`);
        assert.equal(!f.ok && f.reason, "LOGIN_FAILED");
      }
      // The fourth failure is still counted, and it starts a block.
      const fourth = await rpc.login(user.email, "wrong-again");
      assert.equal(!fourth.ok && fourth.reason, "LOGIN_FAILED");
      for (const password of ["still wrong", PASSWORD]) {
        const refused = await rpc.login(user.email, password);
        assert.equal(refused.ok, false);
        if (refused.ok) return;
        assert.equal(refused.code, "RESOURCE_EXHAUSTED");
        assert.equal(refused.reason, "LOGIN_THROTTLED");
        assert.ok(refused.retryDelayMs !== undefined && refused.retryDelayMs > 0 && refused.retryDelayMs <= 30_000, String(refused.retryDelayMs));
      }
      // Once the block is over (moved into the past here), the right password works and resets the counter.
      await identity.deps.db("login_throttle").where({ scope: "account", key: `${tenantId}:${user.email.toLowerCase()}` }).update({ blocked_until: new Date(Date.now() - 1000) });
      ok(await rpc.login(user.email));
      const row: unknown = await identity.deps.db("login_throttle").where({ scope: "account", key: `${tenantId}:${user.email.toLowerCase()}` }).first();
      assert.equal(row, undefined);
      const f = await rpc.login(user.email, "wrong once more");
      assert.equal(!f.ok && f.reason, "LOGIN_FAILED");
    });

    test("refresh rotates the token; reusing a rotated token revokes the whole session", async () => {
      const user = await newUser();
      const first = ok(await rpc.login(user.email)).tokens!;
      const second = ok(await rpc.refresh(first.refreshToken)).tokens!;
      assert.equal(second.sessionId, first.sessionId);
      assert.notEqual(second.refreshToken, first.refreshToken);
      const call = await rpc.content(second.accessToken);
      assert.equal(!call.ok && call.code, "UNIMPLEMENTED");
      const third = ok(await rpc.refresh(second.refreshToken)).tokens!;
      // The first token again: reuse.
      const reused = await rpc.refresh(first.refreshToken);
      assert.equal(!reused.ok && reused.code, "UNAUTHENTICATED");
      assert.equal(!reused.ok && reused.reason, "REFRESH_TOKEN_REUSED");
      // The newest token of the family is dead too.
      const after = await rpc.refresh(third.refreshToken);
      assert.equal(!after.ok && after.code, "UNAUTHENTICATED");
      assert.equal(!after.ok && after.reason, "CREDENTIALS_REVOKED");
      const reuseEvents = await events("identity.session.refresh_token_reused", first.sessionId);
      assert.equal(reuseEvents.length, 1);
      // A token never issued.
      const unknown = await rpc.refresh(`pcr_${"x".repeat(43)}`);
      assert.equal(!unknown.ok && unknown.reason, "REFRESH_TOKEN_INVALID");
      // Listed as revoked for reuse.
      const login = ok(await rpc.login(user.email)).tokens!;
      const all = ok(await rpc.listSessions(login.accessToken, "", true)).sessions;
      const old = all.find((s) => s.id === first.sessionId);
      assert.equal(old?.revokeReason, SessionRevokeReason.REFRESH_TOKEN_REUSED);
      assert.ok(old?.revokeTime);
    });

    test("a session past its absolute lifetime cannot be refreshed", async () => {
      const user = await newUser();
      const tokens = ok(await rpc.login(user.email)).tokens!;
      await withTenant(identity.deps.db, { service: "identity", tenantId }, (trx) =>
        trx("session").where({ family_id: tokens.sessionId }).update({ expires_at: new Date(Date.now() - 2000), absolute_expires_at: new Date(Date.now() - 1000) }),
      );
      const res = await rpc.refresh(tokens.refreshToken);
      assert.equal(!res.ok && res.reason, "REFRESH_TOKEN_INVALID");
    });

    test("logout ends the session (by access token or by refresh token) and is idempotent", async () => {
      const user = await newUser();
      const a = ok(await rpc.login(user.email)).tokens!;
      const b = ok(await rpc.login(user.email)).tokens!;
      const c = ok(await rpc.login(user.email)).tokens!;
      ok(await rpc.logout(a.accessToken));
      ok(await rpc.logout(a.accessToken));
      const refreshA = await rpc.refresh(a.refreshToken);
      assert.equal(!refreshA.ok && refreshA.reason, "CREDENTIALS_REVOKED");
      ok(await rpc.logout(b.accessToken, b.refreshToken));
      const refreshB = await rpc.refresh(b.refreshToken);
      assert.equal(!refreshB.ok && refreshB.reason, "CREDENTIALS_REVOKED");
      // The refresh token alone is enough (a client whose access token expired can still log out).
      ok(await rpc.logout("", c.refreshToken));
      const refreshC = await rpc.refresh(c.refreshToken);
      assert.equal(!refreshC.ok && refreshC.reason, "CREDENTIALS_REVOKED");
      assert.equal(
        (await events("identity.session.logged_out")).filter((e) => [a.sessionId, b.sessionId, c.sessionId].includes(e.aggregate_id!)).length,
        3,
      );
    });

    test("logout by the access token of a session that already ended succeeds and records nothing more", async () => {
      const user = await newUser();
      const kept = ok(await rpc.login(user.email)).tokens!;
      const ended = ok(await rpc.login(user.email)).tokens!;
      ok(await rpc.revokeSession(kept.accessToken, ended.sessionId));
      // The ended session's token was never checked before: no cached status lets it through.
      ok(await rpc.logout(ended.accessToken));
      assert.equal((await events("identity.session.logged_out", ended.sessionId)).length, 0);
      assert.equal((await events("identity.session.revoked", ended.sessionId)).length, 1);
      // Its access token is refused by every check that looks at the session (identity's own pipeline here).
      const refused = await rpc.listSessions(ended.accessToken);
      assert.equal(!refused.ok && refused.reason, "CREDENTIALS_REVOKED");
      assert.equal(ok(await rpc.listSessions(kept.accessToken)).sessions.length, 1, "the other session stays");
    });

    test("logout with neither a refresh token nor a valid access token is UNAUTHENTICATED", async () => {
      const anonymous = await rpc.logout("");
      assert.equal(!anonymous.ok && anonymous.code, "UNAUTHENTICATED");
      const forged = await rpc.logout("eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl");
      assert.equal(!forged.ok && forged.code, "UNAUTHENTICATED");
    });

    test("sessions: list own, revoke one; others' only for admins", async () => {
      const user = await newUser("viewer");
      const admin = await newUser("admin");
      const s1 = ok(await rpc.login(user.email)).tokens!;
      const s2 = ok(await rpc.login(user.email)).tokens!;
      const adminTokens = ok(await rpc.login(admin.email)).tokens!;
      const own = ok(await rpc.listSessions(s1.accessToken)).sessions.map((s) => s.id);
      assert.deepEqual(own, [s2.sessionId, s1.sessionId]);
      const denied = await rpc.listSessions(s1.accessToken, admin.id);
      assert.equal(!denied.ok && denied.code, "PERMISSION_DENIED");
      const byAdmin = ok(await rpc.listSessions(adminTokens.accessToken, user.id)).sessions.map((s) => s.id);
      assert.deepEqual(byAdmin, own);
      const notMine = await rpc.revokeSession(s1.accessToken, adminTokens.sessionId);
      assert.equal(!notMine.ok && notMine.code, "NOT_FOUND");
      const revoked = ok(await rpc.revokeSession(adminTokens.accessToken, s2.sessionId));
      assert.equal(revoked.revokeReason, SessionRevokeReason.REVOKED);
      assert.deepEqual(ok(await rpc.listSessions(s1.accessToken)).sessions.map((s) => s.id), [s1.sessionId]);
      const dead = await rpc.refresh(s2.refreshToken);
      assert.equal(!dead.ok && dead.reason, "CREDENTIALS_REVOKED");
    });

    test("sessions page newest first, each once, with tokens bound to the list", async () => {
      const user = await newUser("viewer");
      const logins: { accessToken: string; sessionId: string }[] = [];
      for (let i = 0; i < 5; i++) logins.push(ok(await rpc.login(user.email)).tokens!);
      ok(await rpc.revokeSession(logins[0]!.accessToken, logins[2]!.sessionId));
      const page = (pageToken: string, showInactive = false, pageSize = 2) =>
        unaryCall(AuthService, identity, protocol, AuthService.method.listSessions, { pageSize, pageToken, showInactive }, { authorization: `Bearer ${logins[0]!.accessToken}` });
      for (const showInactive of [false, true]) {
        const seen: string[] = [];
        let pageToken = "";
        do {
          const listed = await page(pageToken, showInactive);
          assert.ok(listed.ok, "ListSessions");
          seen.push(...listed.res.sessions.map((s) => s.id));
          pageToken = listed.res.nextPageToken;
        } while (pageToken !== "");
        const expected = logins.map((l) => l.sessionId).reverse().filter((id) => showInactive || id !== logins[2]!.sessionId);
        assert.deepEqual(seen, expected, `showInactive=${showInactive}`);
      }
      const first = await page("");
      assert.ok(first.ok, "ListSessions");
      const token = first.res.nextPageToken;
      assert.deepEqual(failure(await page(token, true)), { code: "INVALID_ARGUMENT", reason: "PAGE_TOKEN_INVALID" }, "bound to show_inactive");
      await assertForgedPageTokensRefused(token, (pageToken) => page(pageToken));
    });

    test("changing the password needs the current one and revokes the other sessions", async () => {
      const user = await newUser();
      const current = ok(await rpc.login(user.email)).tokens!;
      const other = ok(await rpc.login(user.email)).tokens!;
      const wrong = await rpc.changePassword(current.accessToken, "not my password", "a brand new password 1");
      assert.equal(!wrong.ok && wrong.code, "UNAUTHENTICATED");
      assert.equal(!wrong.ok && wrong.reason, "PASSWORD_MISMATCH");
      const weak = await rpc.changePassword(current.accessToken, PASSWORD, "aaaaaaaaaaaaaaaa");
      assert.equal(!weak.ok && weak.code, "INVALID_ARGUMENT");
      assert.equal(!weak.ok && weak.reason, "PASSWORD_POLICY");
      ok(await rpc.changePassword(current.accessToken, PASSWORD, "a brand new password 1"));
      const otherRefresh = await rpc.refresh(other.refreshToken);
      assert.equal(!otherRefresh.ok && otherRefresh.reason, "CREDENTIALS_REVOKED");
      ok(await rpc.refresh(current.refreshToken));
      const old = await rpc.login(user.email);
      assert.equal(!old.ok && old.reason, "LOGIN_FAILED");
      ok(await rpc.login(user.email, "a brand new password 1"));
      const changed = await events("identity.user.password_changed", user.id);
      assert.equal(changed.length, 1);
      assert.deepEqual(changed[0]!.payload.revoked_sessions, [other.sessionId]);
    });

    test("an admin resets a password: all the user's sessions end; owners only by owners", async () => {
      const user = await newUser("editor");
      const admin = await newUser("admin");
      const owner = await newUser("owner");
      const session = ok(await rpc.login(user.email)).tokens!;
      const adminTokens = ok(await rpc.login(admin.email)).tokens!;
      const byEditor = await rpc.resetPassword(session.accessToken, admin.id, "another new password 2");
      assert.equal(!byEditor.ok && byEditor.code, "PERMISSION_DENIED");
      const ownerByAdmin = await rpc.resetPassword(adminTokens.accessToken, owner.id, "another new password 2");
      assert.equal(!ownerByAdmin.ok && ownerByAdmin.code, "PERMISSION_DENIED");
      const missing = await rpc.resetPassword(adminTokens.accessToken, randomUUID(), "another new password 2");
      assert.equal(!missing.ok && missing.code, "NOT_FOUND");
      ok(await rpc.resetPassword(adminTokens.accessToken, user.id, "another new password 2"));
      const dead = await rpc.refresh(session.refreshToken);
      assert.equal(!dead.ok && dead.reason, "CREDENTIALS_REVOKED");
      ok(await rpc.login(user.email, "another new password 2"));
      assert.equal((await events("identity.user.password_reset", user.id)).length, 1);
    });
  });
}

test("GetLoginOptions: password login for a known tenant, NOT_FOUND otherwise", async () => {
  const known = await callUnary("grpc", identity, AuthService.method.getLoginOptions, { tenantSlug: slug });
  assert.equal(known.ok && known.response.passwordLoginEnabled, true);
  const unknown = await callUnary("connect", identity, AuthService.method.getLoginOptions, { tenantSlug: uniqueSlug("nosuch") });
  assert.equal(!unknown.ok && unknown.code, "NOT_FOUND");
});
