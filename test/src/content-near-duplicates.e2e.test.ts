import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { EntityType, Visibility } from "@promptcraft/proto/promptcraft/content/v1/resources_pb";
import { ok, PROTOCOLS, SearchHarness } from "./search-e2e-helpers.js";

/**
 * The near-duplicate warning at save time: CreateEntity and UpdateEntity with
 * `check_near_duplicates` return search's near duplicates of the saved text in
 * `Entity.near_duplicate_check` (asked on the caller's behalf: only what the caller can see), and a
 * save never fails or waits long because search is down.
 */

const h = new SearchHarness();
beforeAll(async () => {
  await h.start();
  await h.restartContent({ SEARCH_URL: `http://127.0.0.1:${h.search.grpcPort}` });
});
afterAll(async () => {
  await h.close();
});

const C = ContentService.method;
const TEXT = "when a parcel arrives damaged the customer gets a full refund and a prepaid return label";

/** A port nobody listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

for (const protocol of PROTOCOLS) {
  describe(`near duplicates at save time over ${protocol}`, () => {
    test("create and update warn of visible near duplicates, the saved entity and others' private ones left out; without the flag nothing is checked", async () => {
      const t = await h.tenantWith(["editor", "editor"]);
      const [editor, other] = [t.users[0]!, t.users[1]!];
      const original = await h.createEntity(editor, { title: "Damaged parcel refunds", text: TEXT });
      const hidden = await h.createEntity(other, { title: "Damaged parcel refunds", text: TEXT, visibility: Visibility.PRIVATE });
      const unrelated = await h.createEntity(editor, { title: "Quarterly roadmap", text: "milestones for the mobile app and the new billing page" });
      await h.waitEmbedded(editor, [original, unrelated]);
      await h.waitEmbedded(other, [hidden]);

      const entity = { type: EntityType.CONTEXT, title: "Damaged parcel refunds", content: { text: TEXT }, visibility: Visibility.TENANT };
      const plain = ok(await h.call(protocol, C.createEntity, { entity }, editor.token));
      assert.equal(plain.nearDuplicateCheck, undefined, "not asked, not checked");

      const copy = ok(await h.call(protocol, C.createEntity, { entity, checkNearDuplicates: true }, editor.token));
      assert.ok(copy.id, "the save happened");
      const check = copy.nearDuplicateCheck!;
      assert.equal(check.checked, true);
      assert.equal(check.model, "local-hash-384");
      const named = check.duplicates.map((d) => d.entityId);
      assert.ok(named.includes(original), "the visible original is named");
      assert.ok(!named.includes(copy.id), "the saved entity is left out");
      assert.ok(!named.includes(hidden), "another user's private entity is never named");
      assert.ok(!named.includes(unrelated));
      const first = check.duplicates.find((d) => d.entityId === original)!;
      assert.deepEqual([first.title, first.type], ["Damaged parcel refunds", EntityType.CONTEXT]);
      assert.ok(first.similarity >= 0.9 && first.similarity <= 1);

      const changed = ok(
        await h.call(
          protocol,
          C.updateEntity,
          { entity: { id: unrelated, etag: "", title: "Refunds for damaged parcels", content: { text: TEXT } }, updateMask: { paths: ["title", "content"] }, checkNearDuplicates: true },
          editor.token,
        ),
      );
      assert.equal(changed.version, 2);
      assert.equal(changed.nearDuplicateCheck?.checked, true);
      const afterUpdate = changed.nearDuplicateCheck.duplicates.map((d) => d.entityId);
      assert.ok(afterUpdate.includes(original) && !afterUpdate.includes(unrelated), "the updated text is checked, the entity itself left out");
    });
  });
}

describe("search down", () => {
  test("the save succeeds at once with an unchecked warning", async () => {
    await h.restartContent({ SEARCH_URL: `http://127.0.0.1:${await closedPort()}` });
    try {
      const t = await h.tenantWith(["editor"]);
      for (const protocol of PROTOCOLS) {
        const saved = ok(
          await h.call(protocol, C.createEntity, { entity: { type: EntityType.CONTEXT, title: "Saved anyway", visibility: Visibility.TENANT }, checkNearDuplicates: true }, t.users[0]!.token),
        );
        assert.ok(saved.id);
        assert.deepEqual([saved.nearDuplicateCheck?.checked, saved.nearDuplicateCheck?.duplicates.length, saved.nearDuplicateCheck?.model], [false, 0, ""]);
      }
    } finally {
      await h.restartContent({ SEARCH_URL: `http://127.0.0.1:${h.search.grpcPort}` });
    }
  });
});
