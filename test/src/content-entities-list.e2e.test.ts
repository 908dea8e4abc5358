import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { EntityStatus, EntityType, Permission, Visibility } from "@promptcraft/proto/promptcraft/content/v1/resources_pb";
import { badFields, ContentHarness, failure, ok, PROTOCOLS, type TestUser } from "./content-e2e-helpers.js";

/** ListEntities over gRPC and Connect: filters, orderings, page tokens bound to the query, show_deleted, and the access rule as a SQL predicate (shares included). */

const h = new ContentHarness();
beforeAll(() => h.start());
afterAll(() => h.close());

const M = ContentService.method;

for (const protocol of PROTOCOLS) {
  describe(`ListEntities over ${protocol}`, () => {
    test("filters combine with AND; orderings; paging walks every row once; tokens are bound to the query", async () => {
      const t = await h.tenantWith(["editor", "editor"]);
      const [a, b] = t.users;
      const make = async (user: TestUser, entity: object) =>
        ok(await h.call(protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, visibility: Visibility.TENANT, ...entity } }, user.token));
      const alpha = await make(a!, { title: "Alpha prompt", tags: ["x", "y"] });
      const beta = await make(a!, { title: "beta", type: EntityType.TEMPLATE, tags: ["y"], status: EntityStatus.PUBLISHED });
      const gamma = await make(b!, { title: "Gamma", tags: ["z"], visibility: Visibility.PRIVATE });
      const delta = await make(b!, { title: "al%pha_", type: EntityType.WORKFLOW, status: EntityStatus.ARCHIVED });
      const ids = async (request: object, user: TestUser = b!) => ok(await h.call(protocol, M.listEntities, request, user.token)).entities.map((e) => e.id);

      // Newest update first by default.
      assert.deepEqual(await ids({}), [delta.id, gamma.id, beta.id, alpha.id]);
      assert.deepEqual(await ids({}, a), [delta.id, beta.id, alpha.id], "b's private entity is not listed for a");
      assert.deepEqual(await ids({ orderBy: "update_time" }), [alpha.id, beta.id, gamma.id, delta.id]);
      assert.deepEqual(await ids({ orderBy: "create_time desc" }), [delta.id, gamma.id, beta.id, alpha.id]);
      assert.deepEqual(await ids({ orderBy: "title" }), [delta.id, alpha.id, beta.id, gamma.id]);
      assert.deepEqual(await ids({ orderBy: "title desc" }), [gamma.id, beta.id, alpha.id, delta.id]);
      assert.deepEqual(await ids({ types: [EntityType.TEMPLATE, EntityType.WORKFLOW] }), [delta.id, beta.id]);
      assert.deepEqual(await ids({ tagsAny: ["x", "z"] }), [gamma.id, alpha.id]);
      assert.deepEqual(await ids({ tagsAll: ["x", "y"] }), [alpha.id]);
      assert.deepEqual(await ids({ tagsAll: ["y"], tagsAny: ["y", "z"] }), [beta.id, alpha.id]);
      assert.deepEqual(await ids({ statuses: [EntityStatus.PUBLISHED, EntityStatus.ARCHIVED] }), [delta.id, beta.id]);
      assert.deepEqual(await ids({ ownerId: a!.id }), [beta.id, alpha.id]);
      assert.deepEqual(await ids({ visibility: Visibility.PRIVATE }), [gamma.id]);
      assert.deepEqual(await ids({ titlePrefix: "AL" }), [delta.id, alpha.id]);
      assert.deepEqual(await ids({ titlePrefix: "al%" }), [delta.id], "LIKE wildcards in the prefix are literal");
      assert.deepEqual(await ids({ titlePrefix: "al_" }), []);

      // Favorites only (rows written as the favorites RPCs write them).
      await h.db.raw("insert into favorite (tenant_id, user_id, entity_id) values (?, ?, ?), (?, ?, ?)", [t.tenantId, b!.id, beta.id, t.tenantId, a!.id, alpha.id]);
      assert.deepEqual(await ids({ favoritesOnly: true }), [beta.id]);
      const listed = ok(await h.call(protocol, M.listEntities, { favoritesOnly: true }, b!.token)).entities[0]!;
      assert.equal(listed.favorite, true);
      assert.equal(listed.content, undefined, "basic view by default");

      // Paging: every row exactly once, in order, one per page.
      for (const orderBy of ["", "title", "create_time"]) {
        const all = await ids({ orderBy });
        const seen: string[] = [];
        let pageToken = "";
        do {
          const page = ok(await h.call(protocol, M.listEntities, { orderBy, pageSize: 1, pageToken }, b!.token));
          seen.push(...page.entities.map((e) => e.id));
          pageToken = page.nextPageToken;
        } while (pageToken !== "");
        assert.deepEqual(seen, all, orderBy);
      }
      const first = ok(await h.call(protocol, M.listEntities, { pageSize: 1, tagsAny: ["y"] }, b!.token));
      assert.notEqual(first.nextPageToken, "");
      const invalidToken = { code: "INVALID_ARGUMENT", reason: "PAGE_TOKEN_INVALID" };
      for (const changed of [{ tagsAny: ["x"] }, { orderBy: "title" }, { showDeleted: true }, { tagsAny: ["y"], favoritesOnly: true }]) {
        const outcome = await h.call(protocol, M.listEntities, { pageSize: 1, pageToken: first.nextPageToken, ...changed }, b!.token);
        assert.deepEqual(failure(outcome), invalidToken, JSON.stringify(changed));
        assert.deepEqual(badFields(outcome), ["page_token"]);
      }
      assert.deepEqual(failure(await h.call(protocol, M.listEntities, { pageSize: 1, pageToken: first.nextPageToken, tagsAny: ["y"] }, a!.token)), invalidToken, "another caller's token");
      assert.deepEqual(failure(await h.call(protocol, M.listEntities, { pageToken: "garbage" }, b!.token)), invalidToken);
      const second = ok(await h.call(protocol, M.listEntities, { pageSize: 5, pageToken: first.nextPageToken, tagsAny: ["y"] }, b!.token));
      assert.deepEqual([...first.entities, ...second.entities].map((e) => e.id), [beta.id, alpha.id], "the page size may change between pages");
      assert.equal(second.nextPageToken, "");

      // show_deleted.
      ok(await h.call(protocol, M.deleteEntity, { entityId: delta.id }, b!.token));
      assert.deepEqual(await ids({}), [gamma.id, beta.id, alpha.id]);
      assert.deepEqual(await ids({ showDeleted: true, types: [EntityType.WORKFLOW] }), [delta.id]);

      // Bad input names the field.
      const bad = async (request: object) => badFields(await h.call(protocol, M.listEntities, request, b!.token));
      assert.deepEqual(await bad({ pageSize: 1001 }), ["page_size"]);
      assert.deepEqual(await bad({ orderBy: "owner_id" }), ["order_by"]);
      assert.deepEqual(await bad({ types: [EntityType.UNSPECIFIED] }), ["types[0]"]);
      assert.deepEqual(await bad({ ownerId: "nobody" }), ["owner_id"]);
      assert.deepEqual(await bad({ tagsAll: [""] }), ["tags_all[0]"]);
      assert.deepEqual(await bad({ tagsAny: ["ok", "n\u0000l"], titlePrefix: "\u0000" }), ["tags_any[1]", "title_prefix"]);
    });

    test("the access rule as a predicate: roles, ownership, visibility, live shares (user and tenant), expiry, other tenants", async () => {
      const t = await h.tenantWith(["owner", "editor", "editor", "viewer"]);
      const [owner, author, colleague, viewer] = t.users;
      const other = await h.tenantWith(["owner"]);
      const make = async (title: string, visibility = Visibility.PRIVATE) =>
        ok(await h.call(protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, title, visibility } }, author!.token));
      const priv = await make("private");
      const open = await make("tenant", Visibility.TENANT);
      const sharedToColleague = await make("shared-user");
      const sharedToAll = await make("shared-all");
      const expired = await make("expired");
      const revoked = await make("revoked");
      const share = (entityId: string, grantee: string | null, permission: string, extra = "") =>
        h.db.raw(
          `insert into share (tenant_id, entity_id, grantee_type, grantee_user_id, permission, created_by${extra ? ", created_at, expires_at" : ""})
           values (?, ?, ?, ?, ?, ?${extra ? `, ${extra}` : ""})`,
          [t.tenantId, entityId, grantee ? "user" : "tenant", grantee, permission, author!.id],
        );
      await share(sharedToColleague.id, colleague!.id, "edit");
      await share(sharedToAll.id, null, "admin");
      await share(expired.id, colleague!.id, "view", "now() - interval '2 hours', now() - interval '1 hour'");
      await share(revoked.id, colleague!.id, "view");
      await h.db.raw("update share set revoked_at = now() where entity_id = ?", [revoked.id]);

      const visible = async (user: TestUser) => {
        const page = ok(await h.call(protocol, M.listEntities, { orderBy: "title" }, user.token));
        return Object.fromEntries(page.entities.map((e) => [e.title, e.callerPermission]));
      };
      const all = [priv, open, sharedToColleague, sharedToAll, expired, revoked];
      assert.deepEqual(await visible(owner!), Object.fromEntries(all.map((e) => [e.title, Permission.ADMIN])));
      assert.deepEqual(await visible(author!), Object.fromEntries(all.map((e) => [e.title, Permission.ADMIN])));
      assert.deepEqual(await visible(colleague!), { "shared-all": Permission.ADMIN, "shared-user": Permission.EDIT, tenant: Permission.EDIT });
      assert.deepEqual(await visible(viewer!), { "shared-all": Permission.VIEW, tenant: Permission.VIEW }, "viewers are capped at view");
      assert.deepEqual(await visible(other.users[0]!), {});
      // The single-entity check agrees with the list.
      for (const e of all) {
        const got = await h.call(protocol, M.getEntity, { entityId: e.id }, colleague!.token);
        assert.equal(got.ok, ["tenant", "shared-user", "shared-all"].includes(e.title), e.title);
      }
      // A viewer with an admin share still cannot write.
      const write = await h.call(protocol, M.updateEntity, { entity: { id: sharedToAll.id, title: "x" }, updateMask: { paths: ["title"] } }, viewer!.token);
      assert.deepEqual(failure(write), { code: "PERMISSION_DENIED", reason: "PERMISSION_INSUFFICIENT" });
      // The colleague's edit share lets them update; their admin share (to all) lets them delete.
      ok(await h.call(protocol, M.updateEntity, { entity: { id: sharedToColleague.id, title: "shared-user" }, updateMask: { paths: ["description"] } }, colleague!.token));
      assert.deepEqual(failure(await h.call(protocol, M.deleteEntity, { entityId: sharedToColleague.id }, colleague!.token)).code, "PERMISSION_DENIED");
      ok(await h.call(protocol, M.deleteEntity, { entityId: sharedToAll.id }, colleague!.token));
    });
  });
}
