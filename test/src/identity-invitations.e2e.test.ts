import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomUUID } from "node:crypto";
import { withTenant } from "@promptcraft/db";
import { IdentityService } from "@promptcraft/proto/promptcraft/identity/v1/identity_service_pb";
import { Role, UserState } from "@promptcraft/proto/promptcraft/identity/v1/resources_pb";
import { uniqueSlug } from "@promptcraft/testing";
import { ADMIN_TOKEN, IdentityHarness, ok, PROTOCOLS } from "./identity-e2e-helpers.js";

/**
 * Invitations over gRPC and Connect (issue 3, item 2): CreateUser and CreateTenant without a
 * password return a one-time token, stored only as its SHA-256, valid 7 days, one open per user.
 */

const h = new IdentityHarness();
before(() => h.start());
after(() => h.close());

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
        ["user.created", t.users[0]!.id],
        ["user.invited", t.users[0]!.id],
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
        ["tenant.created", "system"],
        ["user.created", "system"],
        ["user.invited", "system"],
      ]);
    });
  });
}
