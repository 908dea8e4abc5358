import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { EntityType, Permission } from "@promptcraft/proto/promptcraft/content/v1/resources_pb";
import { addVersion, createEntity } from "@promptcraft/content/fixtures";
import { badFields, ContentHarness, failure, NOT_FOUND, ok, PROTOCOLS } from "./content-e2e-helpers.js";

/** ContentService favorites over gRPC and Connect: idempotent add/remove, listing what is still visible, access, events. */

const h = new ContentHarness();
beforeAll(() => h.start());
afterAll(() => h.close());

const M = ContentService.method;

for (const protocol of PROTOCOLS) {
  describe(`favorites over ${protocol}`, () => {
    test("AddFavorite and RemoveFavorite are idempotent; events only when something changed", async () => {
      const t = await h.tenantWith(["editor", "viewer"]);
      const [owner, viewer] = t.users;
      const { id: entityId } = await createEntity(h.db, t.tenantId, owner!.id, { visibility: "tenant" });
      const callId = randomUUID();
      const added = ok(await h.call(protocol, M.addFavorite, { entityId }, viewer!.token, { "x-request-id": callId }));
      assert.equal(added.entityId, entityId);
      assert.equal(added.userId, viewer!.id);
      const again = ok(await h.call(protocol, M.addFavorite, { entityId }, viewer!.token));
      assert.deepEqual(again.createTime, added.createTime, "adding again returns the existing favorite");
      ok(await h.call(protocol, M.removeFavorite, { entityId }, viewer!.token));
      ok(await h.call(protocol, M.removeFavorite, { entityId }, viewer!.token));
      ok(await h.call(protocol, M.removeFavorite, { entityId: randomUUID() }, viewer!.token));
      const events = (await h.events(t.tenantId)).filter((e) => e.event_type.startsWith("content.favorite."));
      assert.deepEqual(
        events.map((e) => [e.event_type, e.aggregate_id, e.actor_id, e.payload.user_id]),
        [
          ["content.favorite.added", entityId, viewer!.id, viewer!.id],
          ["content.favorite.removed", entityId, viewer!.id, viewer!.id],
        ],
      );
      assert.equal(events[0]!.request_id, callId);
    });

    test("ListFavorites: newest first, paged, by type; only entities the caller can still view and that are not deleted", async () => {
      const t = await h.tenantWith(["editor", "editor"]);
      const [owner, fan] = t.users;
      const ids: string[] = [];
      for (const entityType of ["context", "template", "context", "workflow", "context"] as const) {
        const { id } = await createEntity(h.db, t.tenantId, owner!.id, { entityType, visibility: "tenant", title: `${entityType} ${ids.length}`, content: { text: "body" } });
        ok(await h.call(protocol, M.addFavorite, { entityId: id }, fan!.token));
        ids.push(id);
      }
      const listed: string[] = [];
      let pageToken = "";
      do {
        const page = ok(await h.call(protocol, M.listFavorites, { pageSize: 2, pageToken }, fan!.token));
        assert.ok(page.favorites.length <= 2);
        for (const f of page.favorites) {
          assert.equal(f.userId, fan!.id);
          assert.equal(f.entity?.id, f.entityId);
          assert.equal(f.entity?.content, undefined, "basic view");
        }
        listed.push(...page.favorites.map((f) => f.entityId));
        pageToken = page.nextPageToken;
      } while (pageToken);
      assert.deepEqual(listed, [...ids].reverse());
      const contexts = ok(await h.call(protocol, M.listFavorites, { types: [EntityType.CONTEXT] }, fan!.token));
      assert.deepEqual(
        contexts.favorites.map((f) => f.entityId),
        [ids[4], ids[2], ids[0]],
      );
      assert.ok(contexts.favorites.every((f) => f.entity?.type === EntityType.CONTEXT));

      // No longer visible (made private by a new version) and deleted entities drop out of the list.
      await addVersion(h.db, t.tenantId, ids[4]!, owner!.id, { visibility: "private" });
      await h.db.raw("update entity set deleted_at = now(), deleted_by = owner_id, purge_time = now() + interval '30 days' where id = ?", [ids[3]!]);
      assert.deepEqual(
        ok(await h.call(protocol, M.listFavorites, {}, fan!.token)).favorites.map((f) => f.entityId),
        [ids[2], ids[1], ids[0]],
      );
      // A share makes it visible again; the favorite was kept all along.
      ok(await h.call(protocol, M.grantShare, { entityId: ids[4]!, share: { grantee: { case: "userId", value: fan!.id }, permission: Permission.VIEW } }, owner!.token));
      assert.equal(ok(await h.call(protocol, M.listFavorites, {}, fan!.token)).favorites[0]!.entityId, ids[4]);
      assert.deepEqual(ok(await h.call(protocol, M.listFavorites, {}, owner!.token)).favorites, [], "favorites are per user");
    });

    test("private entities, other tenants and bad inputs", async () => {
      const t = await h.tenantWith(["editor", "viewer"]);
      const [owner, viewer] = t.users;
      const other = await h.tenantWith(["owner"]);
      const intruder = other.users[0]!;
      const { id: hidden } = await createEntity(h.db, t.tenantId, owner!.id);
      const { id: visible } = await createEntity(h.db, t.tenantId, owner!.id, { visibility: "tenant" });
      ok(await h.call(protocol, M.addFavorite, { entityId: visible }, owner!.token));
      assert.deepEqual(failure(await h.call(protocol, M.addFavorite, { entityId: hidden }, viewer!.token)), NOT_FOUND);
      for (const entityId of [hidden, visible]) {
        assert.deepEqual(failure(await h.call(protocol, M.addFavorite, { entityId }, intruder.token)), NOT_FOUND);
        ok(await h.call(protocol, M.removeFavorite, { entityId }, intruder.token)); // nothing of theirs to remove
      }
      assert.deepEqual(ok(await h.call(protocol, M.listFavorites, {}, intruder.token)).favorites, []);
      assert.equal(ok(await h.call(protocol, M.listFavorites, {}, owner!.token)).favorites.length, 1, "the intruder changed nothing");
      assert.deepEqual((await h.events(other.tenantId)).filter((e) => e.event_type.startsWith("content.favorite.")), []);

      const bad = async (method: Parameters<typeof h.call>[1], request: Record<string, unknown>, field: string) => {
        const outcome = await h.call(protocol, method, request, viewer!.token);
        assert.equal(failure(outcome).code, "INVALID_ARGUMENT", `${field} of ${method.name}`);
        assert.ok(badFields(outcome).includes(field), `${method.name}: expected ${field}, got ${badFields(outcome).join(",")}`);
      };
      await bad(M.addFavorite, { entityId: "x" }, "entity_id");
      await bad(M.removeFavorite, { entityId: "" }, "entity_id");
      await bad(M.listFavorites, { pageSize: 5000 }, "page_size");
      await bad(M.listFavorites, { pageToken: "garbage" }, "page_token");
      await bad(M.listFavorites, { types: [EntityType.UNSPECIFIED] }, "types[0]");
    });
  });

  test(`favorites belong to users: an API key (which acts for no user) is refused over ${protocol}`, async () => {
    const t = await h.tenantWith(["admin"]);
    const admin = t.users[0]!;
    const key = await h.apiKey(admin.token, "admin");
    const { id: entityId } = await createEntity(h.db, t.tenantId, admin.id, { visibility: "tenant" });
    const refused = { code: "PERMISSION_DENIED", reason: "PERMISSION_INSUFFICIENT" };
    assert.deepEqual(failure(await h.call(protocol, M.addFavorite, { entityId }, key)), refused);
    assert.deepEqual(failure(await h.call(protocol, M.removeFavorite, { entityId }, key)), refused);
    assert.deepEqual(failure(await h.call(protocol, M.listFavorites, {}, key)), refused);
    // The same key reads and moves labels (admin role): it is recorded as the actor.
    ok(await h.call(protocol, M.setLabel, { entityId, label: "production", version: 1 }, key));
    const [event] = ok(await h.call(protocol, M.listLabelHistory, { entityId }, key)).events;
    const { rows } = await h.db.raw<{ rows: { id: string }[] }>("select id from api_key where tenant_id = ?", [t.tenantId]);
    assert.equal(event!.actorId, `api_key:${rows[0]!.id}`);
  });
}
