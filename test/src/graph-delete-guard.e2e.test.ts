import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { GraphService } from "@promptcraft/proto/promptcraft/graph/v1/graph_service_pb";
import { RelationshipType } from "@promptcraft/proto/promptcraft/graph/v1/resources_pb";
import { failure, GraphHarness, ok, PROTOCOLS, type TestUser } from "./graph-e2e-helpers.js";

/**
 * Delete protection across services: content's DeleteEntity asks graph (AnalyzeImpact, with the
 * caller's credentials) and refuses while visible entities depend on the entity, unless `force`;
 * graph down is UNAVAILABLE (force still deletes).
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
      assert.deepEqual(refused.ok ? {} : refused.metadata, { dependent_count: "1", dependents: template });
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
  test("DeleteEntity answers UNAVAILABLE naming graph (RetryInfo); force deletes without asking", async () => {
    const t = await h.tenantWith(["editor"]);
    const editor = t.users[0]!;
    const [a, b] = await h.entities(t.tenantId, editor.id, 2);
    await h.graph.close();
    for (const protocol of PROTOCOLS) {
      const down = await h.callContent(protocol, C.deleteEntity, { entityId: a }, editor.token);
      assert.deepEqual(failure(down), { code: "UNAVAILABLE", reason: "DEPENDENCY_UNAVAILABLE" });
      assert.equal(down.ok ? "" : down.metadata.dependency, "graph");
    }
    ok(await h.callContent("grpc", C.deleteEntity, { entityId: b, force: true }, editor.token));
  });
});
