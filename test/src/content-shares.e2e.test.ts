import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { Permission } from "@promptcraft/proto/promptcraft/content/v1/resources_pb";
import { createEntity } from "@promptcraft/content/fixtures";
import { badFields, ContentHarness, DENIED, failure, NOT_FOUND, ok, PROTOCOLS, type TestUser } from "./content-e2e-helpers.js";

/** ContentService shares over gRPC and Connect: grant/regrant/revoke, what a share grants, expiry without a job, access, events. */

const h = new ContentHarness();
beforeAll(() => h.start());
afterAll(() => h.close());

const M = ContentService.method;

const userGrant = (userId: string, permission: Permission, expireTime?: Date) => ({
  grantee: { case: "userId" as const, value: userId },
  permission,
  ...(expireTime ? { expireTime: timestampFromDate(expireTime) } : {}),
});
const everyoneGrant = (permission: Permission) => ({ grantee: { case: "allTenantMembers" as const, value: true }, permission });

for (const protocol of PROTOCOLS) {
  /** Whether `who` can view the entity: GetEntity answers, with the permission it reports (NOT_FOUND otherwise). */
  async function canView(entityId: string, who: TestUser): Promise<boolean> {
    return (await permissionOf(entityId, who)) !== Permission.UNSPECIFIED;
  }
  async function permissionOf(entityId: string, who: TestUser): Promise<Permission> {
    const outcome = await h.call(protocol, M.getEntity, { entityId }, who.token);
    if (!outcome.ok) {
      assert.deepEqual(failure(outcome), NOT_FOUND);
      return Permission.UNSPECIFIED;
    }
    return outcome.res.callerPermission;
  }
  /** Whether `who` can write the entity (UpdateEntity with an unchanged title writes nothing, so this probes without changing it). */
  async function canEdit(entityId: string, who: TestUser): Promise<boolean> {
    const outcome = await h.call(protocol, M.updateEntity, { entity: { id: entityId, title: "Untitled" }, updateMask: { paths: ["title"] } }, who.token);
    if (!outcome.ok) assert.ok(["NOT_FOUND", "PERMISSION_DENIED"].includes(failure(outcome).code));
    return outcome.ok;
  }

  describe(`shares over ${protocol}`, () => {
    test("GrantShare grants view/edit/admin to a user; re-granting replaces the live share; ListShares; RevokeShare; events", async () => {
      const t = await h.tenantWith(["editor", "editor", "viewer"]);
      const [owner, colleague, viewer] = t.users;
      const { id: entityId } = await createEntity(h.db, t.tenantId, owner!.id, { title: "private" });
      assert.equal(await canView(entityId, colleague!), false, "private: only the owner");

      const callId = randomUUID();
      const granted = ok(await h.call(protocol, M.grantShare, { entityId, share: userGrant(colleague!.id, Permission.VIEW) }, owner!.token, { "x-request-id": callId }));
      assert.equal(granted.entityId, entityId);
      assert.deepEqual(granted.grantee, { case: "userId", value: colleague!.id });
      assert.equal(granted.permission, Permission.VIEW);
      assert.equal(granted.granterId, owner!.id);
      assert.equal(granted.expired, false);
      assert.equal(granted.expireTime, undefined);
      assert.equal(await permissionOf(entityId, colleague!), Permission.VIEW);
      assert.equal(await canEdit(entityId, colleague!), false);

      const upgraded = ok(await h.call(protocol, M.grantShare, { entityId, share: userGrant(colleague!.id, Permission.EDIT) }, owner!.token));
      assert.equal(upgraded.id, granted.id, "re-granting replaces the live share");
      assert.equal(upgraded.permission, Permission.EDIT);
      assert.notDeepEqual(upgraded.updateTime, granted.updateTime, "re-granting changes the update time");
      assert.equal(await canEdit(entityId, colleague!), true);
      assert.equal(await permissionOf(entityId, colleague!), Permission.EDIT);
      const same = ok(await h.call(protocol, M.grantShare, { entityId, share: userGrant(colleague!.id, Permission.EDIT) }, owner!.token));
      assert.deepEqual(same.updateTime, upgraded.updateTime, "granting what is already granted changes nothing");
      // Edit and manage shares are different things: edit is not admin.
      assert.deepEqual(failure(await h.call(protocol, M.listShares, { entityId }, colleague!.token)), DENIED);

      // Viewers are capped at view whatever the share says.
      ok(await h.call(protocol, M.grantShare, { entityId, share: userGrant(viewer!.id, Permission.ADMIN) }, owner!.token));
      assert.equal(await permissionOf(entityId, viewer!), Permission.VIEW);
      assert.equal(await canEdit(entityId, viewer!), false);
      assert.deepEqual(failure(await h.call(protocol, M.listShares, { entityId }, viewer!.token)), DENIED);

      const listed = ok(await h.call(protocol, M.listShares, { entityId }, owner!.token));
      assert.deepEqual(
        listed.shares.map((s) => [s.grantee.value, s.permission]),
        [
          [viewer!.id, Permission.ADMIN],
          [colleague!.id, Permission.EDIT],
        ],
        "newest first",
      );

      ok(await h.call(protocol, M.revokeShare, { entityId, shareId: granted.id }, owner!.token));
      ok(await h.call(protocol, M.revokeShare, { entityId, shareId: granted.id }, owner!.token)); // idempotent
      ok(await h.call(protocol, M.revokeShare, { entityId, shareId: randomUUID() }, owner!.token));
      assert.equal(await canView(entityId, colleague!), false, "a revoked share grants nothing");
      assert.deepEqual(
        ok(await h.call(protocol, M.listShares, { entityId }, owner!.token)).shares.map((s) => s.grantee.value),
        [viewer!.id],
      );
      const regranted = ok(await h.call(protocol, M.grantShare, { entityId, share: userGrant(colleague!.id, Permission.VIEW) }, owner!.token));
      assert.notEqual(regranted.id, granted.id, "after a revocation a grant is a new share");

      const events = (await h.events(t.tenantId, entityId)).filter((e) => e.event_type.startsWith("content.share."));
      assert.deepEqual(
        events.map((e) => [e.event_type, e.payload.grantee_user_id, e.payload.permission]),
        [
          ["content.share.granted", colleague!.id, "view"],
          ["content.share.granted", colleague!.id, "edit"],
          ["content.share.granted", viewer!.id, "admin"],
          ["content.share.revoked", colleague!.id, "edit"],
          ["content.share.granted", colleague!.id, "view"],
        ],
      );
      assert.equal(events[0]!.actor_id, owner!.id);
      assert.equal(events[0]!.request_id, callId);
    });

    test("a share to everyone in the tenant; an admin share lets its grantee manage shares", async () => {
      const t = await h.tenantWith(["editor", "editor", "viewer"]);
      const [owner, colleague, viewer] = t.users;
      const { id: entityId } = await createEntity(h.db, t.tenantId, owner!.id);
      const everyone = ok(await h.call(protocol, M.grantShare, { entityId, share: everyoneGrant(Permission.EDIT) }, owner!.token));
      assert.deepEqual(everyone.grantee, { case: "allTenantMembers", value: true });
      const newcomer = await h.addUser(t.tenantId, "editor");
      assert.equal(await canEdit(entityId, newcomer), true, "users created later are included");
      assert.equal(await canView(entityId, viewer!), true);
      assert.equal(await canEdit(entityId, viewer!), false);
      assert.equal(ok(await h.call(protocol, M.grantShare, { entityId, share: everyoneGrant(Permission.VIEW) }, owner!.token)).id, everyone.id);

      ok(await h.call(protocol, M.grantShare, { entityId, share: userGrant(colleague!.id, Permission.ADMIN) }, owner!.token));
      assert.equal(await permissionOf(entityId, colleague!), Permission.ADMIN);
      assert.equal(ok(await h.call(protocol, M.listShares, { entityId }, colleague!.token)).shares.length, 2);
      ok(await h.call(protocol, M.revokeShare, { entityId, shareId: everyone.id }, colleague!.token));
      assert.equal(await canView(entityId, viewer!), false);
    });

    test("an expired share stops working at its expiry, with no job running", async () => {
      const t = await h.tenantWith(["editor", "editor"]);
      const [owner, colleague] = t.users;
      const { id: entityId } = await createEntity(h.db, t.tenantId, owner!.id);
      const expiry = new Date(Date.now() + 1500);
      const share = ok(await h.call(protocol, M.grantShare, { entityId, share: userGrant(colleague!.id, Permission.EDIT, expiry) }, owner!.token));
      assert.deepEqual(timestampDate(share.expireTime!), expiry);
      assert.equal(await permissionOf(entityId, colleague!), Permission.EDIT);
      assert.equal(await canEdit(entityId, colleague!), true);
      await sleep(Math.max(0, expiry.getTime() - Date.now()) + 300);
      assert.equal(await canView(entityId, colleague!), false, "past its expiry the share grants nothing");
      assert.equal(await canEdit(entityId, colleague!), false);
      assert.deepEqual(ok(await h.call(protocol, M.listEntities, {}, colleague!.token)).entities, [], "nor does it list the entity");
      assert.deepEqual(ok(await h.call(protocol, M.listShares, { entityId }, owner!.token)).shares, [], "expired shares are hidden by default");
      const all = ok(await h.call(protocol, M.listShares, { entityId, showExpired: true }, owner!.token)).shares;
      assert.deepEqual(
        all.map((s) => [s.id, s.expired]),
        [[share.id, true]],
      );
      // Granting again revives the same share with a new expiry.
      const renewed = ok(await h.call(protocol, M.grantShare, { entityId, share: userGrant(colleague!.id, Permission.VIEW) }, owner!.token));
      assert.equal(renewed.id, share.id);
      assert.equal(renewed.expired, false);
      assert.equal(await canView(entityId, colleague!), true);
    });

    test("grantees must be users of the tenant; wrong roles and other tenants on every share method; bad inputs", async () => {
      const t = await h.tenantWith(["editor", "editor", "viewer", "admin"]);
      const [owner, editor, viewer, admin] = t.users;
      const other = await h.tenantWith(["owner"]);
      const stranger = other.users[0]!;
      const { id: entityId } = await createEntity(h.db, t.tenantId, owner!.id, { visibility: "tenant" });
      const userNotFound = { code: "NOT_FOUND", reason: "RESOURCE_NOT_FOUND" };
      assert.deepEqual(failure(await h.call(protocol, M.grantShare, { entityId, share: userGrant(stranger.id, Permission.VIEW) }, owner!.token)), userNotFound);
      assert.deepEqual(failure(await h.call(protocol, M.grantShare, { entityId, share: userGrant(randomUUID(), Permission.VIEW) }, owner!.token)), userNotFound);

      // Tenant admins manage every entity's shares; tenant-visible entities are still not theirs to share for editors and viewers.
      const share = ok(await h.call(protocol, M.grantShare, { entityId, share: userGrant(viewer!.id, Permission.VIEW) }, admin!.token));
      for (const who of [editor!, viewer!]) {
        assert.deepEqual(failure(await h.call(protocol, M.grantShare, { entityId, share: everyoneGrant(Permission.VIEW) }, who.token)), DENIED);
        assert.deepEqual(failure(await h.call(protocol, M.listShares, { entityId }, who.token)), DENIED);
        assert.deepEqual(failure(await h.call(protocol, M.revokeShare, { entityId, shareId: share.id }, who.token)), DENIED);
      }
      for (const intruder of [stranger]) {
        assert.deepEqual(failure(await h.call(protocol, M.grantShare, { entityId, share: everyoneGrant(Permission.VIEW) }, intruder.token)), NOT_FOUND);
        assert.deepEqual(failure(await h.call(protocol, M.listShares, { entityId }, intruder.token)), NOT_FOUND);
        assert.deepEqual(failure(await h.call(protocol, M.revokeShare, { entityId, shareId: share.id }, intruder.token)), NOT_FOUND);
      }
      const { id: privateId } = await createEntity(h.db, t.tenantId, owner!.id);
      assert.deepEqual(failure(await h.call(protocol, M.listShares, { entityId: privateId }, editor!.token)), NOT_FOUND);
      assert.equal(ok(await h.call(protocol, M.listShares, { entityId }, owner!.token)).shares.length, 1, "nothing changed");

      const bad = async (method: Parameters<typeof h.call>[1], request: Record<string, unknown>, field: string) => {
        const outcome = await h.call(protocol, method, request, owner!.token);
        assert.equal(failure(outcome).code, "INVALID_ARGUMENT", `${field} of ${method.name}`);
        assert.ok(badFields(outcome).includes(field), `${method.name}: expected ${field}, got ${badFields(outcome).join(",")}`);
      };
      await bad(M.grantShare, { entityId: "x", share: everyoneGrant(Permission.VIEW) }, "entity_id");
      await bad(M.grantShare, { entityId }, "share");
      await bad(M.grantShare, { entityId, share: { permission: Permission.VIEW } }, "share.grantee");
      await bad(M.grantShare, { entityId, share: userGrant("not-a-uuid", Permission.VIEW) }, "share.user_id");
      await bad(M.grantShare, { entityId, share: { grantee: { case: "allTenantMembers", value: false }, permission: Permission.VIEW } }, "share.all_tenant_members");
      await bad(M.grantShare, { entityId, share: userGrant(editor!.id, Permission.UNSPECIFIED) }, "share.permission");
      await bad(M.grantShare, { entityId, share: userGrant(editor!.id, Permission.VIEW, new Date(Date.now() - 60_000)) }, "share");
      await bad(M.grantShare, { entityId, share: everyoneGrant(Permission.VIEW), requestId: "nope" }, "request_id");
      await bad(M.listShares, { entityId, pageSize: -1 }, "page_size");
      await bad(M.listShares, { entityId, pageToken: "!!" }, "page_token");
      await bad(M.revokeShare, { entityId, shareId: "nope" }, "share_id");
      await bad(M.revokeShare, { entityId: "", shareId: share.id }, "entity_id");

      await h.db.raw("update entity set deleted_at = now(), deleted_by = owner_id, purge_time = now() + interval '30 days' where id = ?", [entityId]);
      assert.deepEqual(failure(await h.call(protocol, M.grantShare, { entityId, share: everyoneGrant(Permission.VIEW) }, owner!.token)), {
        code: "FAILED_PRECONDITION",
        reason: "RESOURCE_DELETED",
      });
      ok(await h.call(protocol, M.revokeShare, { entityId, shareId: share.id }, owner!.token)); // revoking on a deleted entity is allowed
    });

    test("ListShares pages newest first with opaque tokens", async () => {
      const t = await h.tenantWith(["editor"]);
      const owner = t.users[0]!;
      const { id: entityId } = await createEntity(h.db, t.tenantId, owner.id);
      const grantees: string[] = [];
      for (let i = 0; i < 5; i++) {
        const u = await h.addUser(t.tenantId, "viewer");
        ok(await h.call(protocol, M.grantShare, { entityId, share: userGrant(u.id, Permission.VIEW) }, owner.token));
        grantees.push(u.id);
      }
      const seen: string[] = [];
      let pageToken = "";
      do {
        const page = ok(await h.call(protocol, M.listShares, { entityId, pageSize: 2, pageToken }, owner.token));
        assert.ok(page.shares.length <= 2);
        seen.push(...page.shares.map((s) => s.grantee.value as string));
        pageToken = page.nextPageToken;
      } while (pageToken);
      assert.deepEqual(seen, grantees.reverse());
    });
  });
}
