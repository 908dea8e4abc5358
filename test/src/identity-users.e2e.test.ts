import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { IdentityService } from "@promptcraft/proto/promptcraft/identity/v1/identity_service_pb";
import { Role, UserState } from "@promptcraft/proto/promptcraft/identity/v1/resources_pb";
import { createUser } from "@promptcraft/testing";
import { failure, IdentityHarness, microsOf, ok, PROTOCOLS } from "./identity-e2e-helpers.js";
import { assertForgedPageTokensRefused } from "./page-tokens.js";

/** IdentityService users over gRPC and Connect: roles, owners, soft delete, pagination, tenancy, events. */

const h = new IdentityHarness();
beforeAll(() => h.start());
afterAll(() => h.close());

const M = IdentityService.method;
const DENIED = { code: "PERMISSION_DENIED", reason: "PERMISSION_INSUFFICIENT" };
const NOT_FOUND = { code: "NOT_FOUND", reason: "RESOURCE_NOT_FOUND" };
const LAST_OWNER = { code: "FAILED_PRECONDITION", reason: "LAST_OWNER" };

for (const protocol of PROTOCOLS) {
  describe(`users over ${protocol}`, () => {
    test("CreateUser: admins create, only owners create owners, emails unique case-insensitively, events", async () => {
      const t = await h.tenantWith(["owner", "admin", "editor", "viewer"]);
      const [owner, admin, editor, viewer] = t.users;
      const callId = randomUUID();
      const created = ok(
        await h.call(protocol, M.createUser, { user: { email: "Ann@Example.test", role: Role.EDITOR }, password: "a long enough password" }, admin!.token, { "x-request-id": callId }),
      );
      const ann = created.user!;
      assert.equal(ann.tenantId, t.tenantId);
      assert.equal(ann.email, "Ann@Example.test");
      assert.equal(ann.displayName, "Ann");
      assert.equal(ann.role, Role.EDITOR);
      assert.equal(ann.state, UserState.ACTIVE);
      assert.equal(ann.hasPassword, true);
      const invited = ok(await h.call(protocol, M.createUser, { user: { email: "bob@example.test", role: Role.VIEWER, displayName: "Bob" } }, admin!.token));
      assert.equal(invited.user!.state, UserState.INVITED);

      assert.deepEqual(failure(await h.call(protocol, M.createUser, { user: { email: "ann@EXAMPLE.test", role: Role.VIEWER } }, admin!.token)), {
        code: "ALREADY_EXISTS",
        reason: "RESOURCE_ALREADY_EXISTS",
      });
      assert.deepEqual(failure(await h.call(protocol, M.createUser, { user: { email: "boss@example.test", role: Role.OWNER } }, admin!.token)), DENIED);
      assert.equal(ok(await h.call(protocol, M.createUser, { user: { email: "boss@example.test", role: Role.OWNER } }, owner!.token)).user!.role, Role.OWNER);
      for (const weak of [editor!, viewer!]) {
        assert.deepEqual(failure(await h.call(protocol, M.createUser, { user: { email: `x-${weak.role}@example.test`, role: Role.VIEWER } }, weak.token)), DENIED);
      }
      const missingRole = await h.call(protocol, M.createUser, { user: { email: "r@example.test" } }, admin!.token);
      assert.equal(failure(missingRole).code, "INVALID_ARGUMENT");

      // Idempotent with request_id.
      const requestId = randomUUID();
      const first = ok(await h.call(protocol, M.createUser, { user: { email: "idem@example.test", role: Role.VIEWER }, requestId }, admin!.token));
      const retry = ok(await h.call(protocol, M.createUser, { user: { email: "idem@example.test", role: Role.VIEWER }, requestId }, admin!.token));
      assert.equal(retry.user!.id, first.user!.id);
      assert.deepEqual(failure(await h.call(protocol, M.createUser, { user: { email: "other@example.test", role: Role.VIEWER }, requestId }, admin!.token)), {
        code: "ALREADY_EXISTS",
        reason: "REQUEST_ID_REUSED",
      });

      const events = (await h.events(t.tenantId)).filter((e) => e.event_type === "identity.user.created");
      assert.equal(events.length, 4);
      assert.equal(events[0]!.aggregate_id, ann.id);
      assert.equal(events[0]!.actor_type, "user");
      assert.equal(events[0]!.actor_id, admin!.id);
      assert.equal(events[0]!.request_id, callId);
    });

    test("GetUser and ListUsers: any member reads; another tenant's users are NOT_FOUND / invisible", async () => {
      const a = await h.tenantWith(["owner", "viewer"]);
      const b = await h.tenantWith(["owner"]);
      const [ownerA, viewerA] = a.users;
      const got = ok(await h.call(protocol, M.getUser, { userId: ownerA!.id }, viewerA!.token));
      assert.equal(got.role, Role.OWNER);
      assert.equal(ok(await h.call(protocol, M.listUsers, {}, viewerA!.token)).users.length, 2);

      const intruder = b.users[0]!.token;
      assert.deepEqual(failure(await h.call(protocol, M.getUser, { userId: ownerA!.id }, intruder)), NOT_FOUND);
      assert.deepEqual(failure(await h.call(protocol, M.updateUser, { user: { id: viewerA!.id, displayName: "pwned" }, updateMask: { paths: ["display_name"] } }, intruder)), NOT_FOUND);
      assert.deepEqual(failure(await h.call(protocol, M.deactivateUser, { userId: viewerA!.id }, intruder)), NOT_FOUND);
      assert.deepEqual(failure(await h.call(protocol, M.deleteUser, { userId: viewerA!.id }, intruder)), NOT_FOUND);
      assert.deepEqual(failure(await h.call(protocol, M.undeleteUser, { userId: viewerA!.id }, intruder)), NOT_FOUND);
      const listB = ok(await h.call(protocol, M.listUsers, { pageSize: 1000 }, intruder));
      assert.deepEqual(listB.users.map((u) => u.id), [b.users[0]!.id]);
      assert.equal(ok(await h.call(protocol, M.getUser, { userId: viewerA!.id }, ownerA!.token)).displayName.startsWith("User "), true);
    });

    test("ListUsers pages by email with opaque tokens and filters by role and state", async () => {
      const t = await h.tenantWith(["admin"]);
      const admin = t.users[0]!;
      const emails = ["c@p.test", "A@p.test", "e@p.test", "b@p.test", "D@p.test"];
      for (const [i, email] of emails.entries()) await createUser(h.db, t.tenantId, i % 2 ? "viewer" : "editor", { email });
      const seen: string[] = [];
      let pageToken = "";
      let pages = 0;
      do {
        const page = ok(await h.call(protocol, M.listUsers, { pageSize: 2, pageToken, emailPrefix: "", roles: [Role.EDITOR, Role.VIEWER] }, admin.token));
        assert.ok(page.users.length <= 2);
        seen.push(...page.users.map((u) => u.email));
        pageToken = page.nextPageToken;
        pages++;
      } while (pageToken !== "");
      assert.equal(pages, 3);
      assert.deepEqual(seen, ["A@p.test", "b@p.test", "c@p.test", "D@p.test", "e@p.test"]);

      const viewers = ok(await h.call(protocol, M.listUsers, { roles: [Role.VIEWER] }, admin.token));
      assert.deepEqual(viewers.users.map((u) => u.email), ["A@p.test", "b@p.test"]);
      const prefixed = ok(await h.call(protocol, M.listUsers, { emailPrefix: "B@" }, admin.token));
      assert.deepEqual(prefixed.users.map((u) => u.email), ["b@p.test"]);

      const first = ok(await h.call(protocol, M.listUsers, { pageSize: 1 }, admin.token));
      assert.deepEqual(failure(await h.call(protocol, M.listUsers, { pageSize: 1, pageToken: first.nextPageToken, roles: [Role.VIEWER] }, admin.token)), {
        code: "INVALID_ARGUMENT",
        reason: "PAGE_TOKEN_INVALID",
      });
      assert.deepEqual(failure(await h.call(protocol, M.listUsers, { pageToken: "garbage" }, admin.token)), { code: "INVALID_ARGUMENT", reason: "PAGE_TOKEN_INVALID" });
      await assertForgedPageTokensRefused(first.nextPageToken, (pageToken) => h.call(protocol, M.listUsers, { pageSize: 1, pageToken }, admin.token));

      await h.call(protocol, M.deactivateUser, { userId: viewers.users[0]!.id }, admin.token);
      const deactivated = ok(await h.call(protocol, M.listUsers, { states: [UserState.DEACTIVATED] }, admin.token));
      assert.deepEqual(deactivated.users.map((u) => u.email), ["A@p.test"]);

      // Addresses JavaScript lowers differently from PostgreSQL ("İ"): page by page, the same order as one page, each once.
      for (const email of ["İbis@p.test", "ivy@p.test", "iz@p.test"]) await createUser(h.db, t.tenantId, "viewer", { email });
      const walked: string[] = [];
      do {
        const page = ok(await h.call(protocol, M.listUsers, { pageSize: 1, pageToken }, admin.token));
        walked.push(...page.users.map((u) => u.email));
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      const onePage = ok(await h.call(protocol, M.listUsers, { pageSize: 100 }, admin.token));
      assert.deepEqual(walked, onePage.users.map((u) => u.email));
      assert.equal(walked.length, 9, "the admin, five users and three more");
    });

    test("UpdateUser: names and roles, owners manage owners, the last owner stays, etags, events", async () => {
      const t = await h.tenantWith(["owner", "admin", "editor", "viewer"]);
      const [owner, admin, editor, viewer] = t.users;
      // Anyone renames themselves; renaming others needs admin.
      assert.equal(ok(await h.call(protocol, M.updateUser, { user: { id: viewer!.id, displayName: "Vi" }, updateMask: { paths: ["display_name"] } }, viewer!.token)).displayName, "Vi");
      assert.deepEqual(failure(await h.call(protocol, M.updateUser, { user: { id: editor!.id, displayName: "Ed" }, updateMask: { paths: ["display_name"] } }, viewer!.token)), DENIED);
      assert.deepEqual(failure(await h.call(protocol, M.updateUser, { user: { id: viewer!.id, role: Role.EDITOR }, updateMask: { paths: ["role"] } }, editor!.token)), DENIED);
      assert.deepEqual(failure(await h.call(protocol, M.updateUser, { user: { id: viewer!.id, role: Role.ADMIN }, updateMask: { paths: ["role"] } }, viewer!.token)), DENIED);

      const cur = ok(await h.call(protocol, M.getUser, { userId: viewer!.id }, admin!.token));
      const promoted = ok(await h.call(protocol, M.updateUser, { user: { id: viewer!.id, role: Role.EDITOR, etag: cur.etag }, updateMask: { paths: ["role"] } }, admin!.token));
      assert.equal(promoted.role, Role.EDITOR);
      assert.deepEqual(failure(await h.call(protocol, M.updateUser, { user: { id: viewer!.id, role: Role.ADMIN, etag: cur.etag }, updateMask: { paths: ["role"] } }, admin!.token)), {
        code: "ABORTED",
        reason: "ETAG_MISMATCH",
      });
      // Admins cannot touch owners nor make owners.
      assert.deepEqual(failure(await h.call(protocol, M.updateUser, { user: { id: viewer!.id, role: Role.OWNER }, updateMask: { paths: ["role"] } }, admin!.token)), DENIED);
      assert.deepEqual(failure(await h.call(protocol, M.updateUser, { user: { id: owner!.id, role: Role.ADMIN }, updateMask: { paths: ["role"] } }, admin!.token)), DENIED);
      // The last owner cannot step down; with a second owner they can.
      assert.deepEqual(failure(await h.call(protocol, M.updateUser, { user: { id: owner!.id, role: Role.ADMIN }, updateMask: { paths: ["role"] } }, owner!.token)), LAST_OWNER);
      ok(await h.call(protocol, M.updateUser, { user: { id: admin!.id, role: Role.OWNER }, updateMask: { paths: ["role"] } }, owner!.token));
      assert.equal(ok(await h.call(protocol, M.updateUser, { user: { id: owner!.id, role: Role.ADMIN }, updateMask: { paths: ["role"] } }, owner!.token)).role, Role.ADMIN);

      const roleEvents = (await h.events(t.tenantId)).filter((e) => e.event_type === "identity.user.role_changed");
      assert.deepEqual(roleEvents.map((e) => e.payload), [
        { from: "viewer", to: "editor" },
        { from: "admin", to: "owner" },
        { from: "owner", to: "admin" },
      ]);
      assert.equal(roleEvents[0]!.actor_id, admin!.id);
    });

    test("Deactivate, reactivate, delete, undelete; the last active owner is kept", async () => {
      const t = await h.tenantWith(["owner", "admin", "editor", "viewer"]);
      const [owner, admin, editor, viewer] = t.users;
      assert.deepEqual(failure(await h.call(protocol, M.deactivateUser, { userId: owner!.id }, owner!.token)), LAST_OWNER);
      assert.deepEqual(failure(await h.call(protocol, M.deleteUser, { userId: owner!.id }, owner!.token)), LAST_OWNER);
      assert.deepEqual(failure(await h.call(protocol, M.deactivateUser, { userId: owner!.id }, admin!.token)), DENIED);
      assert.deepEqual(failure(await h.call(protocol, M.deactivateUser, { userId: viewer!.id }, editor!.token)), DENIED);
      assert.deepEqual(failure(await h.call(protocol, M.deleteUser, { userId: viewer!.id }, editor!.token)), DENIED);

      const off = ok(await h.call(protocol, M.deactivateUser, { userId: editor!.id }, admin!.token));
      assert.equal(off.state, UserState.DEACTIVATED);
      assert.ok(off.deactivateTime);
      assert.equal(ok(await h.call(protocol, M.deactivateUser, { userId: editor!.id }, admin!.token)).etag, off.etag);
      const on = ok(await h.call(protocol, M.reactivateUser, { userId: editor!.id, etag: off.etag }, admin!.token));
      assert.equal(on.state, UserState.INVITED); // fixture users have no password

      const gone = ok(await h.call(protocol, M.deleteUser, { userId: viewer!.id }, admin!.token));
      assert.ok(gone.deleteTime && gone.purgeTime);
      assert.equal(Number(gone.purgeTime.seconds - gone.deleteTime.seconds), 30 * 86400);
      // Times come back to the microsecond, exactly as stored; purge_time keeps delete_time's microseconds.
      assert.equal(microsOf(gone.deleteTime), await h.columnMicros(t.tenantId, "app_user", "deleted_at", viewer!.id));
      assert.equal(microsOf(gone.createTime!), await h.columnMicros(t.tenantId, "app_user", "created_at", viewer!.id));
      assert.equal(microsOf(gone.purgeTime) - microsOf(gone.deleteTime), 30n * 86_400n * 1_000_000n);
      assert.equal(ok(await h.call(protocol, M.getUser, { userId: viewer!.id }, admin!.token)).deleteTime?.seconds, gone.deleteTime.seconds);
      assert.ok(!ok(await h.call(protocol, M.listUsers, {}, admin!.token)).users.some((u) => u.id === viewer!.id));
      assert.ok(ok(await h.call(protocol, M.listUsers, { showDeleted: true }, admin!.token)).users.some((u) => u.id === viewer!.id));
      assert.deepEqual(failure(await h.call(protocol, M.updateUser, { user: { id: viewer!.id, displayName: "x" }, updateMask: { paths: ["display_name"] } }, admin!.token)), {
        code: "FAILED_PRECONDITION",
        reason: "RESOURCE_DELETED",
      });
      assert.deepEqual(failure(await h.call(protocol, M.deleteUser, { userId: viewer!.id }, admin!.token)), { code: "FAILED_PRECONDITION", reason: "RESOURCE_DELETED" });
      const back = ok(await h.call(protocol, M.undeleteUser, { userId: viewer!.id }, admin!.token));
      assert.equal(back.deleteTime, undefined);
      assert.deepEqual(failure(await h.call(protocol, M.undeleteUser, { userId: viewer!.id }, admin!.token)), {
        code: "FAILED_PRECONDITION",
        reason: "RESOURCE_NOT_DELETED",
      });

      // A deleted user's address can be taken; restoring the old user then fails.
      const email = ok(await h.call(protocol, M.getUser, { userId: viewer!.id }, admin!.token)).email;
      ok(await h.call(protocol, M.deleteUser, { userId: viewer!.id }, admin!.token));
      ok(await h.call(protocol, M.createUser, { user: { email: email.toUpperCase(), role: Role.VIEWER } }, admin!.token));
      assert.deepEqual(failure(await h.call(protocol, M.undeleteUser, { userId: viewer!.id }, admin!.token)), { code: "ALREADY_EXISTS", reason: "RESOURCE_ALREADY_EXISTS" });

      const types = (await h.events(t.tenantId)).map((e) => e.event_type);
      assert.deepEqual(types, ["identity.user.deactivated", "identity.user.reactivated", "identity.user.deleted", "identity.user.undeleted", "identity.user.deleted", "identity.user.created", "identity.user.invited"]);
    });
  });
}
