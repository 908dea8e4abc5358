import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { GraphService } from "@promptcraft/proto/promptcraft/graph/v1/graph_service_pb";
import { RelationshipType } from "@promptcraft/proto/promptcraft/graph/v1/resources_pb";
import { failure, GraphHarness, ok, PROTOCOLS, type TestUser } from "./graph-e2e-helpers.js";

/**
 * Delete protection across services: content's DeleteEntity asks graph (ListRelationships, incoming,
 * with the caller's credentials) and refuses while visible entities depend on the entity, unless
 * `force`; with graph down the delete goes ahead (soft, undoable), logged.
 */

const h = new GraphHarness();
beforeAll(() => h.start({ withContent: true }));
afterAll(() => h.close());

const C = ContentService.method;
const G = GraphService.method;
const HAS_DEPENDENTS = { code: "FAILED_PRECONDITION", reason: "ENTITY_HAS_DEPENDENTS" };

async function link(who: TestUser, source: string, target: string, type: RelationshipType) {
  ok(await h.call("grpc", G.createRelationship, { relationship: { sourceEntityId: source, targetEntityId: target, type } }, who.token));
}

for (const protocol of PROTOCOLS) {
  describe(`DeleteEntity's dependents guard over ${protocol}`, () => {
    test("refused while entities depend on it (naming them), unless forced; informational relationships do not count; access first", async () => {
      const t = await h.tenantWith(["editor", "viewer"]);
      const [editor, viewer] = t.users;
      const [context, template, library, fork] = await h.entities(t.tenantId, editor!.id, 4);
      await link(editor!, template!, context!, RelationshipType.DEPENDS_ON);
      await link(editor!, context!, library!, RelationshipType.PART_OF);
      await link(editor!, fork!, template!, RelationshipType.DERIVED_FROM);

      const refused = await h.callContent(protocol, C.deleteEntity, { entityId: context }, editor!.token);
      assert.deepEqual(failure(refused), HAS_DEPENDENTS);
      assert.ok(!refused.ok);
      assert.equal(refused.metadata.dependent_count, "1");
      assert.match(refused.metadata.dependents ?? "", new RegExp(`^[a-z0-9-]+:${template}$`), "the dependent, as name:uuid");
      assert.deepEqual(failure(await h.callContent(protocol, C.deleteEntity, { entityId: library }, editor!.token)), HAS_DEPENDENTS, "part_of counts");
      // Access comes first: a viewer sees the entity but may not delete it.
      assert.deepEqual(failure(await h.callContent(protocol, C.deleteEntity, { entityId: context }, viewer!.token)), { code: "PERMISSION_DENIED", reason: "PERMISSION_INSUFFICIENT" });
      // The template's only dependent is a fork (derived_from): informational, no protection.
      ok(await h.callContent(protocol, C.deleteEntity, { entityId: template }, editor!.token));
      const forced = ok(await h.callContent(protocol, C.deleteEntity, { entityId: context, force: true }, editor!.token));
      assert.ok(forced.deleteTime !== undefined);
    });

    test("a dependent the caller may not see does not count (it does not exist for them)", async () => {
      const t = await h.tenantWith(["editor", "editor"]);
      const [owner, other] = t.users;
      const [shared] = await h.entities(t.tenantId, owner!.id, 1);
      const [hidden] = await h.entities(t.tenantId, other!.id, 1, { visibility: "private" });
      await link(other!, hidden!, shared!, RelationshipType.DEPENDS_ON);
      ok(await h.callContent(protocol, C.deleteEntity, { entityId: shared }, owner!.token));
    });
  });
}

describe("graph down", () => {
  test("DeleteEntity goes ahead without the check (a soft delete is undone by UndeleteEntity); force never asks", async () => {
    const t = await h.tenantWith(["editor"]);
    const editor = t.users[0]!;
    const [a, b, dependent] = await h.entities(t.tenantId, editor.id, 3);
    await link(editor, dependent!, a!, RelationshipType.DEPENDS_ON);
    await h.graph.close();
    const deleted = ok(await h.callContent("grpc", C.deleteEntity, { entityId: a }, editor.token));
    assert.ok(deleted.deleteTime !== undefined, "deleted although an entity depends on it: graph could not be asked");
    ok(await h.callContent("connect", C.undeleteEntity, { entityId: a }, editor.token));
    ok(await h.callContent("connect", C.deleteEntity, { entityId: b, force: true }, editor.token));
  });
});
