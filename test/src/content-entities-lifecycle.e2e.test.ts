import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { EntityStatus, EntityType, Visibility } from "@promptcraft/proto/promptcraft/content/v1/resources_pb";
import { badFields, ContentHarness, DENIED, ETAG_MISMATCH, failure, NOT_FOUND, ok, PROTOCOLS, type TestUser } from "./content-e2e-helpers.js";

/** ContentService entity changes over gRPC and Connect: update (mask, etag, no-op), delete, undelete, purge, with roles, tenancy and events. */

const h = new ContentHarness();
beforeAll(() => h.start());
afterAll(() => h.close());

const M = ContentService.method;

for (const protocol of PROTOCOLS) {
  describe(`entity changes over ${protocol}`, () => {
    const create = async (user: TestUser, entity: object = {}) =>
      ok(await h.call(protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, title: "Doc", ...entity } }, user.token));

    test("UpdateEntity: masked fields only, etag, commit message, unchanged content makes no version and no event", async () => {
      const t = await h.tenantWith(["editor"]);
      const editor = t.users[0]!;
      const e = await create(editor, { description: "keep", tags: ["x"], content: { text: "a" } });
      const callId = randomUUID();
      const updated = ok(
        await h.call(
          protocol,
          M.updateEntity,
          { entity: { id: e.id, title: "New", description: "ignored: not in the mask", etag: e.etag }, updateMask: { paths: ["title"] }, commitMessage: "rename" },
          editor.token,
          { "x-request-id": callId },
        ),
      );
      assert.equal(updated.version, 2);
      assert.equal(updated.title, "New");
      assert.equal(updated.description, "keep");
      assert.deepEqual(updated.tags, ["x"]);
      assert.equal(updated.commitMessage, "rename");
      assert.equal(updated.etag, "2");
      assert.notEqual(updated.contentHash, e.contentHash);
      assert.deepEqual(updated.createTime, e.createTime);

      // The same values again: nothing written.
      const same = ok(await h.call(protocol, M.updateEntity, { entity: { id: e.id, title: "New" }, updateMask: { paths: ["title"] } }, editor.token));
      assert.equal(same.version, 2);
      assert.equal(same.etag, "2");
      // A stale etag is ABORTED with the current one.
      const stale = await h.call(protocol, M.updateEntity, { entity: { id: e.id, title: "X", etag: e.etag }, updateMask: { paths: ["title"] } }, editor.token);
      assert.deepEqual(failure(stale), ETAG_MISMATCH);
      assert.equal(!stale.ok && stale.metadata.current_etag, "2");

      // `*` replaces every field; unset ones are cleared (status and visibility must be given).
      const all = ok(
        await h.call(
          protocol,
          M.updateEntity,
          { entity: { id: e.id, title: "All", status: EntityStatus.PUBLISHED, visibility: Visibility.TENANT, metadata: { k: 1 } }, updateMask: { paths: ["*"] } },
          editor.token,
        ),
      );
      assert.equal(all.version, 3);
      assert.equal(all.description, "");
      assert.deepEqual(all.tags, []);
      assert.deepEqual(all.content, {});
      assert.deepEqual(all.metadata, { k: 1 });
      assert.equal(all.status, EntityStatus.PUBLISHED);
      assert.equal(all.visibility, Visibility.TENANT);
      assert.equal(all.commitMessage, "Update");
      // A sub-path of content or metadata replaces one key.
      const sub = ok(
        await h.call(protocol, M.updateEntity, { entity: { id: e.id, content: { text: "b" }, metadata: {} }, updateMask: { paths: ["content.text", "metadata.k"] } }, editor.token),
      );
      assert.deepEqual([sub.version, sub.content, sub.metadata], [4, { text: "b" }, {}]);

      // request_id: a retry returns the version the first call wrote, not ABORTED on the etag it changed.
      const requestId = randomUUID();
      const retryable = { entity: { id: e.id, title: "Once", etag: sub.etag }, updateMask: { paths: ["title"] }, requestId };
      const firstCall = ok(await h.call(protocol, M.updateEntity, retryable, editor.token));
      assert.equal(firstCall.version, 5);
      ok(await h.call(protocol, M.updateEntity, { entity: { id: e.id, title: "Later" }, updateMask: { paths: ["title"] } }, editor.token));
      const retried = ok(await h.call(protocol, M.updateEntity, retryable, editor.token));
      assert.deepEqual([retried.version, retried.currentVersion, retried.title], [5, 6, "Once"]);

      const events = (await h.events(t.tenantId, e.id)).filter((ev) => ev.event_type === "content.entity.updated");
      assert.equal(events.length, 5);
      assert.equal(events[0]!.request_id, callId);
      assert.equal(events[0]!.actor_id, editor.id);
      assert.equal(events[0]!.aggregate_version, "2");
      assert.deepEqual(events[0]!.payload, {
        version: 2,
        previous_version: 1,
        changed_fields: ["title"],
        commit_message: "rename",
        content_hash: updated.contentHash,
      });
    });

    test("UpdateEntity: bad input names the field; viewers, other editors of a private entity and other tenants are refused", async () => {
      const t = await h.tenantWith(["editor", "editor", "viewer", "admin"]);
      const [author, otherEditor, viewer, admin] = t.users;
      const other = await h.tenantWith(["owner"]);
      const e = await create(author!);
      const update = (user: TestUser, entity: object, paths: string[] = ["title"]) =>
        h.call(protocol, M.updateEntity, { entity: { id: e.id, title: "Changed", ...entity }, updateMask: { paths } }, user.token);
      const fields = async (outcome: Promise<Parameters<typeof badFields>[0]>) => {
        const o = await outcome;
        assert.equal(failure(o).code, "INVALID_ARGUMENT");
        return badFields(o);
      };
      assert.deepEqual(await fields(update(author!, { title: "" })), ["entity.title"]);
      assert.deepEqual(await fields(update(author!, { title: " " })), ["entity.title"]);
      assert.deepEqual(await fields(update(author!, {}, ["status"])), ["entity.status"]);
      assert.deepEqual(await fields(update(author!, {}, ["visibility"])), ["entity.visibility"]);
      assert.deepEqual(await fields(update(author!, {}, ["owner_id"])), ["update_mask"]);
      assert.deepEqual(await fields(update(author!, {}, ["title.x"])), ["update_mask"]);
      assert.deepEqual(await fields(update(author!, { tags: ["ok", "\tbad"] }, ["tags"])), ["entity.tags[1]"]);
      assert.deepEqual(await fields(h.call(protocol, M.updateEntity, { entity: { id: e.id, title: "x" } }, author!.token)), ["update_mask"]);
      assert.deepEqual(await fields(h.call(protocol, M.updateEntity, { entity: { title: "x" }, updateMask: { paths: ["title"] } }, author!.token)), ["entity"]);
      assert.deepEqual(await fields(update(author!, { etag: "x".repeat(129) })), ["entity.etag"]);
      const tooLarge = await update(author!, { content: { text: "z".repeat(1024 * 1024) } }, ["content"]);
      assert.deepEqual(failure(tooLarge), { code: "INVALID_ARGUMENT", reason: "CONTENT_TOO_LARGE" });

      assert.deepEqual(failure(await update(otherEditor!, {})), NOT_FOUND);
      assert.deepEqual(failure(await update(viewer!, {})), NOT_FOUND);
      assert.deepEqual(failure(await update(other.users[0]!, {})), NOT_FOUND);
      assert.equal(ok(await update(admin!, { title: "By admin" })).authorId, admin!.id);
      // Tenant-visible: the viewer sees it but may not write; another editor may.
      ok(await update(author!, { visibility: Visibility.TENANT }, ["visibility"]));
      assert.deepEqual(failure(await update(viewer!, {})), DENIED);
      assert.equal(ok(await update(otherEditor!, { title: "By colleague" })).version, 4);
      assert.deepEqual(failure(await update(other.users[0]!, {})), NOT_FOUND);
    });

    test("DeleteEntity, UndeleteEntity, PurgeEntity: admin on the entity, states, etags, retention, cascade, events", async () => {
      const t = await h.tenantWith(["owner", "editor", "editor", "viewer"]);
      const [owner, author, colleague, viewer] = t.users;
      const other = await h.tenantWith(["owner"]);
      const e = await create(author!, { visibility: Visibility.TENANT });
      const del = (user: TestUser, etag = "") => h.call(protocol, M.deleteEntity, { entityId: e.id, etag }, user.token);
      const undel = (user: TestUser, etag = "") => h.call(protocol, M.undeleteEntity, { entityId: e.id, etag }, user.token);
      const purge = (user: TestUser, force = false, etag = "") => h.call(protocol, M.purgeEntity, { entityId: e.id, force, etag }, user.token);

      assert.deepEqual(failure(await del(colleague!)), DENIED, "edit is not enough to delete");
      assert.deepEqual(failure(await del(viewer!)), DENIED);
      assert.deepEqual(failure(await del(other.users[0]!)), NOT_FOUND);
      assert.deepEqual(failure(await del(author!, "7")), ETAG_MISMATCH);
      assert.deepEqual(failure(await purge(owner!)), { code: "FAILED_PRECONDITION", reason: "RESOURCE_NOT_DELETED" });
      assert.deepEqual(failure(await undel(author!)), { code: "FAILED_PRECONDITION", reason: "RESOURCE_NOT_DELETED" });

      const deleted = ok(await del(author!, e.etag));
      assert.ok(deleted.deleteTime && deleted.purgeTime);
      const retentionMs = Number(deleted.purgeTime.seconds - deleted.deleteTime.seconds) * 1000;
      assert.equal(retentionMs, 30 * 86_400_000);
      assert.equal(deleted.etag, "2");
      assert.equal(ok(await h.call(protocol, M.getEntity, { entityId: e.id }, colleague!.token)).deleteTime !== undefined, true, "Get still returns it");
      assert.deepEqual(failure(await del(author!)), { code: "FAILED_PRECONDITION", reason: "RESOURCE_DELETED" });
      assert.deepEqual(failure(await h.call(protocol, M.updateEntity, { entity: { id: e.id, title: "x" }, updateMask: { paths: ["title"] } }, author!.token)), {
        code: "FAILED_PRECONDITION",
        reason: "RESOURCE_DELETED",
      });
      assert.deepEqual(failure(await undel(colleague!)), DENIED);
      assert.deepEqual(failure(await undel(other.users[0]!)), NOT_FOUND);
      const restored = ok(await undel(author!, "2"));
      assert.equal(restored.deleteTime, undefined);
      assert.equal(restored.purgeTime, undefined);
      assert.equal(restored.etag, "3");

      ok(await del(author!));
      assert.deepEqual(failure(await purge(author!, true)), DENIED, "purge needs the tenant admin role, even for the owner of the entity");
      assert.deepEqual(failure(await purge(other.users[0]!, true)), NOT_FOUND);
      assert.deepEqual(failure(await purge(owner!)), { code: "FAILED_PRECONDITION", reason: "PURGE_NOT_ALLOWED_YET" });
      assert.deepEqual(failure(await purge(owner!, true, "1")), ETAG_MISMATCH);
      // Past its purge time no force is needed.
      await h.db.raw("update entity set purge_time = deleted_at where id = ?", [e.id]);
      ok(await purge(owner!));
      assert.deepEqual(failure(await h.call(protocol, M.getEntity, { entityId: e.id }, owner!.token)), NOT_FOUND);
      assert.deepEqual(failure(await purge(owner!, true)), NOT_FOUND);
      const { rows } = await h.db.raw<{ rows: { n: number }[] }>("select count(*)::int as n from entity_version where entity_id = ?", [e.id]);
      assert.equal(rows[0]!.n, 0, "versions went with the entity");

      const events = (await h.events(t.tenantId, e.id)).map((ev) => [ev.event_type, ev.actor_id]);
      assert.deepEqual(events, [
        ["content.entity.created", author!.id],
        ["content.entity.deleted", author!.id],
        ["content.entity.undeleted", author!.id],
        ["content.entity.deleted", author!.id],
        ["content.entity.purged", owner!.id],
      ]);
      assert.deepEqual(badFields(await h.call(protocol, M.deleteEntity, { entityId: "x" }, owner!.token)), ["entity_id"]);
      assert.deepEqual(badFields(await h.call(protocol, M.undeleteEntity, { entityId: "x" }, owner!.token)), ["entity_id"]);
      assert.deepEqual(badFields(await h.call(protocol, M.purgeEntity, { entityId: "x" }, owner!.token)), ["entity_id"]);
    });

    test("SOFT_DELETE_RETENTION_DAYS sets purge_time", async () => {
      const short = new ContentHarness();
      await short.start({ SOFT_DELETE_RETENTION_DAYS: "0" });
      try {
        const t = await short.tenantWith(["admin"]);
        const admin = t.users[0]!;
        const e = ok(await short.call(protocol, M.createEntity, { entity: { type: EntityType.LIBRARY, title: "L" } }, admin.token));
        const deleted = ok(await short.call(protocol, M.deleteEntity, { entityId: e.id }, admin.token));
        assert.deepEqual(deleted.purgeTime, deleted.deleteTime);
        ok(await short.call(protocol, M.purgeEntity, { entityId: e.id }, admin.token));
      } finally {
        await short.close();
      }
    });
  });
}
