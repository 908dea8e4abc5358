import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { ChangeType, DiffLineKind, EntityType, EntityView, Visibility } from "@promptcraft/proto/promptcraft/content/v1/resources_pb";
import { setLabel } from "@promptcraft/content/fixtures";
import { badFields, ContentHarness, DENIED, ETAG_MISMATCH, failure, NOT_FOUND, ok, PROTOCOLS, type TestUser } from "./content-e2e-helpers.js";

/** Revisions over gRPC and Connect: ListEntityRevisions, RollbackEntity, DiffEntityRevisions, with roles, tenancy and events. */

const h = new ContentHarness();
beforeAll(() => h.start());
afterAll(() => h.close());

const M = ContentService.method;

for (const protocol of PROTOCOLS) {
  describe(`revisions over ${protocol}`, () => {
    /** An entity with versions 1..3 (titles v1..v3, text lines changing). */
    const threeVersions = async (user: TestUser, visibility = Visibility.PRIVATE) => {
      const e = ok(
        await h.call(protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, title: "v1", visibility, content: { text: "a\nb\nc\n" } } }, user.token),
      );
      for (const [title, text] of [["v2", "a\nB\nc\n"], ["v3", "a\nB\nc\nd\n"]] as const) {
        ok(await h.call(protocol, M.updateEntity, { entity: { id: e.id, title, content: { text } }, updateMask: { paths: ["title", "content"] }, commitMessage: title }, user.token));
      }
      return e;
    };

    test("ListEntityRevisions: newest first, paginated, labels per revision; access", async () => {
      const t = await h.tenantWith(["editor", "editor", "viewer"]);
      const [author, colleague, viewer] = t.users;
      const other = await h.tenantWith(["owner"]);
      const e = await threeVersions(author!);
      await setLabel(h.db, t.tenantId, e.id, "production", 2, author!.id);
      const all = ok(await h.call(protocol, M.listEntityRevisions, { entityId: e.id }, author!.token));
      assert.deepEqual(all.revisions.map((r) => [r.version, r.title, r.commitMessage, r.labels]), [
        [3, "v3", "v3", ["latest"]],
        [2, "v2", "v2", ["production"]],
        [1, "v1", "Create", []],
      ]);
      assert.equal(all.revisions[0]!.content, undefined, "basic view by default");
      assert.ok(all.revisions[1]!.revisionEndTime);
      assert.deepEqual(all.revisions[1]!.revisionEndTime, all.revisions[0]!.revisionCreateTime);
      assert.equal(all.nextPageToken, "");
      const full = ok(await h.call(protocol, M.listEntityRevisions, { entityId: e.id, view: EntityView.FULL, pageSize: 1 }, author!.token));
      assert.deepEqual(full.revisions[0]!.content, { text: "a\nB\nc\nd\n" });

      const seen: number[] = [];
      let pageToken = "";
      do {
        const page = ok(await h.call(protocol, M.listEntityRevisions, { entityId: e.id, pageSize: 2, pageToken }, author!.token));
        seen.push(...page.revisions.map((r) => r.version));
        pageToken = page.nextPageToken;
      } while (pageToken);
      assert.deepEqual(seen, [3, 2, 1]);
      const firstPage = ok(await h.call(protocol, M.listEntityRevisions, { entityId: e.id, pageSize: 1 }, author!.token));
      const other2 = await threeVersions(author!);
      assert.deepEqual(failure(await h.call(protocol, M.listEntityRevisions, { entityId: other2.id, pageToken: firstPage.nextPageToken }, author!.token)), {
        code: "INVALID_ARGUMENT",
        reason: "PAGE_TOKEN_INVALID",
      });

      for (const outsider of [colleague!, viewer!, other.users[0]!]) {
        assert.deepEqual(failure(await h.call(protocol, M.listEntityRevisions, { entityId: e.id }, outsider.token)), NOT_FOUND);
      }
      assert.deepEqual(badFields(await h.call(protocol, M.listEntityRevisions, { entityId: e.id, pageSize: -1 }, author!.token)), ["page_size"]);
      assert.deepEqual(badFields(await h.call(protocol, M.listEntityRevisions, { entityId: "x" }, author!.token)), ["entity_id"]);
    });

    test("RollbackEntity: a new version equal to the old one, restored_from_version, no-op onto equal content, event", async () => {
      const t = await h.tenantWith(["editor", "viewer"]);
      const [author, viewer] = t.users;
      const other = await h.tenantWith(["owner"]);
      const e = await threeVersions(author!, Visibility.TENANT);
      const callId = randomUUID();
      const rolled = ok(await h.call(protocol, M.rollbackEntity, { entityId: e.id, version: 1, etag: "3" }, author!.token, { "x-request-id": callId }));
      assert.equal(rolled.version, 4);
      assert.equal(rolled.restoredFromVersion, 1);
      assert.equal(rolled.title, "v1");
      assert.deepEqual(rolled.content, { text: "a\nb\nc\n" });
      assert.equal(rolled.commitMessage, "Rollback to version 1");
      const v1 = ok(await h.call(protocol, M.getEntity, { entityId: e.id, version: 1 }, author!.token));
      assert.equal(rolled.contentHash, v1.contentHash);
      assert.equal(v1.restoredFromVersion, undefined);

      // Onto content equal to the current version's: nothing is written.
      const again = ok(await h.call(protocol, M.rollbackEntity, { entityId: e.id, version: 1 }, author!.token));
      assert.equal(again.version, 4);
      assert.equal(ok(await h.call(protocol, M.rollbackEntity, { entityId: e.id, version: 4 }, author!.token)).version, 4);
      const withMessage = ok(await h.call(protocol, M.rollbackEntity, { entityId: e.id, version: 3, commitMessage: "undo" }, author!.token));
      assert.deepEqual([withMessage.version, withMessage.commitMessage, withMessage.restoredFromVersion], [5, "undo", 3]);
      // request_id: a retry returns the version the first call wrote.
      const requestId = randomUUID();
      assert.equal(ok(await h.call(protocol, M.rollbackEntity, { entityId: e.id, version: 2, etag: "5", requestId }, author!.token)).version, 6);
      const retried = ok(await h.call(protocol, M.rollbackEntity, { entityId: e.id, version: 2, etag: "5", requestId }, author!.token));
      assert.deepEqual([retried.version, retried.restoredFromVersion], [6, 2]);

      assert.deepEqual(failure(await h.call(protocol, M.rollbackEntity, { entityId: e.id, version: 1, etag: "3" }, author!.token)), ETAG_MISMATCH);
      const missing = await h.call(protocol, M.rollbackEntity, { entityId: e.id, version: 9 }, author!.token);
      assert.deepEqual(failure(missing), NOT_FOUND);
      assert.equal(!missing.ok && missing.metadata.resource_type, "entity_version");
      assert.deepEqual(failure(await h.call(protocol, M.rollbackEntity, { entityId: e.id, version: 1 }, viewer!.token)), DENIED);
      assert.deepEqual(failure(await h.call(protocol, M.rollbackEntity, { entityId: e.id, version: 1 }, other.users[0]!.token)), NOT_FOUND);
      assert.deepEqual(badFields(await h.call(protocol, M.rollbackEntity, { entityId: e.id, version: 0 }, author!.token)), ["version"]);
      ok(await h.call(protocol, M.deleteEntity, { entityId: e.id }, author!.token));
      assert.deepEqual(failure(await h.call(protocol, M.rollbackEntity, { entityId: e.id, version: 1 }, author!.token)), {
        code: "FAILED_PRECONDITION",
        reason: "RESOURCE_DELETED",
      });

      const events = (await h.events(t.tenantId, e.id)).filter((ev) => ev.event_type === "content.entity.rolled_back");
      assert.equal(events.length, 3);
      assert.equal(events[0]!.request_id, callId);
      assert.equal(events[0]!.actor_id, author!.id);
      assert.deepEqual(events[0]!.payload, {
        version: 4,
        previous_version: 3,
        restored_from_version: 1,
        commit_message: "Rollback to version 1",
        content_hash: rolled.contentHash,
      });
    });

    test("DiffEntityRevisions: changed fields with values, line diffs of changed texts, identical versions; access", async () => {
      const t = await h.tenantWith(["editor", "viewer"]);
      const [author, viewer] = t.users;
      const other = await h.tenantWith(["owner"]);
      const e = await threeVersions(author!, Visibility.TENANT);
      const diff = ok(await h.call(protocol, M.diffEntityRevisions, { entityId: e.id, baseVersion: 1 }, viewer!.token));
      assert.equal(diff.entityId, e.id);
      assert.deepEqual([diff.baseVersion, diff.targetVersion, diff.identical], [1, 3, false]);
      assert.deepEqual(
        diff.changes.map((c) => [c.path, c.changeType, c.baseValue && toJson(ValueSchema, c.baseValue), c.targetValue && toJson(ValueSchema, c.targetValue)]),
        [
          ["content.text", ChangeType.MODIFIED, "a\nb\nc\n", "a\nB\nc\nd\n"],
          ["title", ChangeType.MODIFIED, "v1", "v3"],
        ],
      );
      const text = diff.textDiffs.find((d) => d.path === "content.text")!;
      assert.equal(text.unified, "--- v1\n+++ v3\n@@ -1,3 +1,4 @@\n a\n-b\n+B\n c\n+d\n");
      assert.deepEqual(text.hunks[0]!.lines.map((l) => l.kind), [
        DiffLineKind.CONTEXT,
        DiffLineKind.REMOVED,
        DiffLineKind.ADDED,
        DiffLineKind.CONTEXT,
        DiffLineKind.ADDED,
      ]);
      assert.deepEqual(diff.textDiffs.map((d) => d.path), ["content.text", "title"]);
      const noContext = ok(await h.call(protocol, M.diffEntityRevisions, { entityId: e.id, baseVersion: 1, targetVersion: 3, contextLines: 0 }, viewer!.token));
      assert.equal(noContext.textDiffs[0]!.hunks.length, 2);

      ok(await h.call(protocol, M.rollbackEntity, { entityId: e.id, version: 2 }, author!.token));
      const same = ok(await h.call(protocol, M.diffEntityRevisions, { entityId: e.id, baseVersion: 2 }, author!.token));
      assert.deepEqual([same.targetVersion, same.identical, same.changes.length, same.textDiffs.length], [4, true, 0, 0]);
      const added = ok(await h.call(protocol, M.updateEntity, { entity: { id: e.id, metadata: { a: { b: [1] } } }, updateMask: { paths: ["metadata"] } }, author!.token));
      const meta = ok(await h.call(protocol, M.diffEntityRevisions, { entityId: e.id, baseVersion: 4, targetVersion: added.version }, author!.token));
      assert.deepEqual(meta.changes.map((c) => [c.path, c.changeType, c.baseValue]), [["metadata.a", ChangeType.ADDED, undefined]]);

      const missing = await h.call(protocol, M.diffEntityRevisions, { entityId: e.id, baseVersion: 1, targetVersion: 99 }, author!.token);
      assert.deepEqual(failure(missing), NOT_FOUND);
      assert.equal(!missing.ok && missing.metadata.version, "99");
      assert.deepEqual(failure(await h.call(protocol, M.diffEntityRevisions, { entityId: e.id, baseVersion: 1 }, other.users[0]!.token)), NOT_FOUND);
      const priv = await threeVersions(author!);
      assert.deepEqual(failure(await h.call(protocol, M.diffEntityRevisions, { entityId: priv.id, baseVersion: 1 }, viewer!.token)), NOT_FOUND);
      assert.deepEqual(badFields(await h.call(protocol, M.diffEntityRevisions, { entityId: e.id, baseVersion: 0 }, author!.token)), ["base_version"]);
      assert.deepEqual(badFields(await h.call(protocol, M.diffEntityRevisions, { entityId: e.id, baseVersion: 1, contextLines: 101 }, author!.token)), ["context_lines"]);
    });
  });
}
