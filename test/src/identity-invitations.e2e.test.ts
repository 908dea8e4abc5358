import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { createHash, randomUUID } from "node:crypto";
import { withTenant } from "@promptcraft/db";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { AuthService, type AcceptInvitationRequestSchema } from "@promptcraft/proto/promptcraft/identity/v1/auth_service_pb";
import { IdentityService } from "@promptcraft/proto/promptcraft/identity/v1/identity_service_pb";
import { AuthMethod, Role, UserState } from "@promptcraft/proto/promptcraft/identity/v1/resources_pb";
import { uniqueSlug } from "@promptcraft/testing";
import { ADMIN_TOKEN, badFields, failure, IdentityHarness, ok, PROTOCOLS, type Protocol } from "./identity-e2e-helpers.js";
import { unaryCall } from "./rpc-outcomes.js";

/**
 * Invitations over gRPC and Connect (issue 3, item 2): CreateUser and CreateTenant without a
 * password return a one-time token, stored only as its SHA-256, valid 7 days, one open per user.
 */

const h = new IdentityHarness();
beforeAll(() => h.start());
afterAll(() => h.close());

const M = IdentityService.method;
const TOKEN = /^pci_[A-Za-z0-9_-]{43}$/;
const DAY_MS = 86_400_000;

interface InvitationRow {
  token_hash: string;
  created_at: Date;
  expires_at: Date;
  accepted_at: Date | null;
  revoked_at: Date | null;
}

async function invitationsOf(tenantId: string, userId: string): Promise<InvitationRow[]> {
  return withTenant(h.db, { service: "identity", tenantId }, async (trx) => {
    const { rows } = await trx.raw<{ rows: InvitationRow[] }>(
      "select token_hash, created_at, expires_at, accepted_at, revoked_at from invitation where user_id = ? order by created_at",
      [userId],
    );
    return rows;
  });
}

const sha256 = (value: string) => createHash("sha256").update(value).digest("hex");
const PASSWORD = "a fine long passphrase";

function accept(protocol: Protocol, request: MessageInitShape<typeof AcceptInvitationRequestSchema>) {
  return unaryCall(AuthService, h.identity, protocol, AuthService.method.acceptInvitation, request, {});
}

/** A new invited user of a new tenant, with their token. */
async function invitee(protocol: Protocol) {
  const t = await h.tenantWith(["admin"]);
  const email = `a-${randomUUID().slice(0, 8)}@x.test`;
  const res = ok(await h.call(protocol, M.createUser, { user: { email, role: Role.EDITOR, displayName: "Before" } }, t.users[0]!.token));
  return { tenantId: t.tenantId, admin: t.users[0]!, userId: res.user!.id, email, token: res.invitationToken };
}

for (const protocol of PROTOCOLS) {
  describe(`invitations over ${protocol}`, () => {
    test("CreateUser without a password returns a one-time token, stored only as its SHA-256, valid 7 days", async () => {
      const t = await h.tenantWith(["admin"]);
      const res = ok(await h.call(protocol, M.createUser, { user: { email: `i-${randomUUID().slice(0, 8)}@x.test`, role: Role.EDITOR } }, t.users[0]!.token));
      assert.equal(res.user!.state, UserState.INVITED);
      assert.match(res.invitationToken, TOKEN);
      const [row, ...more] = await invitationsOf(t.tenantId, res.user!.id);
      assert.equal(more.length, 0);
      assert.equal(row!.token_hash, sha256(res.invitationToken));
      assert.ok(Math.abs(row!.expires_at.getTime() - row!.created_at.getTime() - 7 * DAY_MS) < 60_000, "expires 7 days after");
      const events = (await h.events(t.tenantId)).filter((e) => e.aggregate_id === res.user!.id).map((e) => [e.event_type, e.actor_id]);
      assert.deepEqual(events, [
        ["identity.user.created", t.users[0]!.id],
        ["identity.user.invited", t.users[0]!.id],
      ]);

      const withPassword = ok(
        await h.call(protocol, M.createUser, { user: { email: `p-${randomUUID().slice(0, 8)}@x.test`, role: Role.EDITOR }, password: "a long enough password" }, t.users[0]!.token),
      );
      assert.equal(withPassword.invitationToken, "");
      assert.deepEqual(await invitationsOf(t.tenantId, withPassword.user!.id), []);
    });

    test("a retried CreateUser (same request_id) issues a new token and closes the old one", async () => {
      const t = await h.tenantWith(["admin"]);
      const request = { user: { email: `r-${randomUUID().slice(0, 8)}@x.test`, role: Role.VIEWER }, requestId: randomUUID() };
      const first = ok(await h.call(protocol, M.createUser, request, t.users[0]!.token));
      const retry = ok(await h.call(protocol, M.createUser, request, t.users[0]!.token));
      assert.equal(retry.user!.id, first.user!.id);
      assert.match(retry.invitationToken, TOKEN);
      assert.notEqual(retry.invitationToken, first.invitationToken);
      const rows = await invitationsOf(t.tenantId, first.user!.id);
      assert.deepEqual(
        rows.map((r) => [r.token_hash, r.revoked_at !== null]),
        [
          [sha256(first.invitationToken), true],
          [sha256(retry.invitationToken), false],
        ],
      );
    });

    test("CreateTenant without an owner password invites the owner with a token", async () => {
      const res = ok(await h.call(protocol, M.createTenant, { tenant: { slug: uniqueSlug(), displayName: "Invited" }, owner: { email: "owner@inv.test" } }, ADMIN_TOKEN));
      assert.equal(res.owner!.state, UserState.INVITED);
      assert.match(res.invitationToken, TOKEN);
      const [row] = await invitationsOf(res.tenant!.id, res.owner!.id);
      assert.equal(row!.token_hash, sha256(res.invitationToken));
      const events = (await h.events(res.tenant!.id)).map((e) => [e.event_type, e.actor_type]);
      assert.deepEqual(events, [
        ["identity.tenant.created", "system"],
        ["identity.user.created", "system"],
        ["identity.user.invited", "system"],
      ]);
    });
  
    test("AcceptInvitation sets the password, activates the user and starts a session; the token is used up", async () => {
      const inv = await invitee(protocol);
      const res = ok(await accept(protocol, { invitationToken: inv.token, password: PASSWORD, displayName: "After" }));
      assert.equal(res.user!.id, inv.userId);
      assert.equal(res.user!.state, UserState.ACTIVE);
      assert.equal(res.user!.hasPassword, true);
      assert.equal(res.user!.displayName, "After");
      assert.equal(res.tokens!.tokenType, "Bearer");
      assert.match(res.tokens!.refreshToken, /^pcr_/);
      // The access token works at once, and the password logs in.
      assert.equal(ok(await h.call(protocol, M.getUser, { userId: inv.userId }, res.tokens!.accessToken)).id, inv.userId);
      const slug = ok(await h.call(protocol, M.getTenant, { tenantId: inv.tenantId }, ADMIN_TOKEN)).slug;
      // The session is an invitation session, and stays one across a refresh; a later Login is a password session.
      const refreshed = ok(await unaryCall(AuthService, h.identity, protocol, AuthService.method.refreshToken, { refreshToken: res.tokens!.refreshToken }, {})).tokens!;
      assert.equal(refreshed.sessionId, res.tokens!.sessionId);
      const login = ok(await unaryCall(AuthService, h.identity, protocol, AuthService.method.login, { tenantSlug: slug, email: inv.email, password: PASSWORD }, {})).tokens!;
      const sessions = ok(await unaryCall(AuthService, h.identity, protocol, AuthService.method.listSessions, {}, { authorization: `Bearer ${refreshed.accessToken}` })).sessions;
      assert.deepEqual(
        sessions.map((s) => [s.id, s.authMethod]),
        [
          [login.sessionId, AuthMethod.PASSWORD],
          [res.tokens!.sessionId, AuthMethod.INVITATION],
        ],
      );
      // Single use.
      const again = await accept(protocol, { invitationToken: inv.token, password: PASSWORD });
      assert.deepEqual(failure(again), { code: "INVALID_ARGUMENT", reason: "INVITATION_INVALID" });
      assert.deepEqual(badFields(again), ["invitation_token"]);
      const [row] = await invitationsOf(inv.tenantId, inv.userId);
      assert.ok(row!.accepted_at);
      const events = (await h.events(inv.tenantId)).filter((e) => e.aggregate_id === inv.userId).map((e) => [e.event_type, e.actor_id, e.payload.method]);
      assert.deepEqual(events.slice(-3), [
        ["identity.user.invitation_accepted", inv.userId, undefined],
        ["identity.login.succeeded", inv.userId, "invitation"],
        ["identity.login.succeeded", inv.userId, "password"], // the Login above
      ]);
    });

    test("AcceptInvitation refuses unknown, replaced and expired tokens, weak passwords, deleted users and suspended tenants", async () => {
      assert.deepEqual(failure(await accept(protocol, { invitationToken: `pci_${"x".repeat(43)}`, password: PASSWORD })), { code: "INVALID_ARGUMENT", reason: "INVITATION_INVALID" });

      const weak = await invitee(protocol);
      const refused = await accept(protocol, { invitationToken: weak.token, password: "aaaaaaaaaaaaaa" });
      assert.deepEqual(failure(refused), { code: "INVALID_ARGUMENT", reason: "PASSWORD_POLICY" });
      assert.deepEqual(badFields(refused), ["password"]);
      // A refused password does not use the invitation up.
      ok(await accept(protocol, { invitationToken: weak.token, password: PASSWORD }));

      const expired = await invitee(protocol);
      await withTenant(h.db, { service: "identity", tenantId: expired.tenantId }, (trx) =>
        trx.raw("update invitation set created_at = created_at - interval '8 days', expires_at = expires_at - interval '8 days' where user_id = ?", [expired.userId]),
      );
      assert.deepEqual(failure(await accept(protocol, { invitationToken: expired.token, password: PASSWORD })), { code: "INVALID_ARGUMENT", reason: "INVITATION_INVALID" });

      const gone = await invitee(protocol);
      ok(await h.call(protocol, M.deleteUser, { userId: gone.userId }, gone.admin.token));
      assert.deepEqual(failure(await accept(protocol, { invitationToken: gone.token, password: PASSWORD })), { code: "INVALID_ARGUMENT", reason: "INVITATION_INVALID" });

      const suspended = await invitee(protocol);
      ok(await h.call(protocol, M.suspendTenant, { tenantId: suspended.tenantId, reason: "test" }, ADMIN_TOKEN));
      assert.deepEqual(failure(await accept(protocol, { invitationToken: suspended.token, password: PASSWORD })), { code: "UNAUTHENTICATED", reason: "TENANT_SUSPENDED" });
      ok(await h.call(protocol, M.resumeTenant, { tenantId: suspended.tenantId }, ADMIN_TOKEN));
      // Still valid once the tenant is resumed.
      ok(await accept(protocol, { invitationToken: suspended.token, password: PASSWORD }));

      const t = await h.tenantWith(["admin"]);
      const request = { user: { email: `r-${randomUUID().slice(0, 8)}@x.test`, role: Role.VIEWER }, requestId: randomUUID() };
      const first = ok(await h.call(protocol, M.createUser, request, t.users[0]!.token));
      const retry = ok(await h.call(protocol, M.createUser, request, t.users[0]!.token));
      assert.deepEqual(failure(await accept(protocol, { invitationToken: first.invitationToken, password: PASSWORD })), { code: "INVALID_ARGUMENT", reason: "INVITATION_INVALID" }, "replaced");
      ok(await accept(protocol, { invitationToken: retry.invitationToken, password: PASSWORD }));
    });
  });
}
