import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { GraphService } from "@promptcraft/proto/promptcraft/graph/v1/graph_service_pb";
import { Direction, ImpactKind, RelationshipType, ResolutionKind, ResolutionState } from "@promptcraft/proto/promptcraft/graph/v1/resources_pb";
import { addVersion, setLabel } from "@promptcraft/content/fixtures";
import { badFields, failure, GraphHarness, ok, PROTOCOLS, type TestUser } from "./graph-e2e-helpers.js";

/** GraphService walks over gRPC and Connect: GetEntityGraph (lattices, hubs, limits, access), ResolveDependencies (pins, as of a time, conflicts), AnalyzeImpact. */

const h = new GraphHarness();
beforeAll(() => h.start());
afterAll(() => h.close());

const M = GraphService.method;
const DEPENDS = RelationshipType.DEPENDS_ON;
const PART_OF = RelationshipType.PART_OF;
const NOT_FOUND = { code: "NOT_FOUND", reason: "RESOURCE_NOT_FOUND" };

/** The database's clock, to the microsecond: a time strictly between two writes. */
async function dbNow(): Promise<Date> {
  return (await h.db.raw<{ rows: { t: Date }[] }>("select clock_timestamp() as t")).rows[0]!.t;
}

for (const protocol of PROTOCOLS) {
  const link = async (who: TestUser, source: string, target: string, type = DEPENDS, pin?: { case: "targetVersion"; value: number } | { case: "targetLabel"; value: string }) =>
    ok(await h.call(protocol, M.createRelationship, { relationship: { sourceEntityId: source, targetEntityId: target, type, ...(pin ? { targetPin: pin } : {}) } }, who.token));

  describe(`GetEntityGraph over ${protocol}`, () => {
    test("a diamond lattice (4^5 paths to the bottom) comes back as its 25 nodes, each once at its depth, with all 84 edges", async () => {
      const t = await h.tenantWith(["editor"]);
      const editor = t.users[0]!;
      const [root] = await h.entities(t.tenantId, editor.id, 1);
      const layers: string[][] = [[root!]];
      for (let i = 0; i < 6; i++) layers.push(await h.entities(t.tenantId, editor.id, 4));
      for (let i = 0; i < 6; i++) for (const s of layers[i]!) for (const d of layers[i + 1]!) await link(editor, s, d, i % 2 ? PART_OF : DEPENDS);
      const graph = ok(await h.call(protocol, M.getEntityGraph, { entityId: root, depth: 10, direction: Direction.OUTGOING }, editor.token));
      assert.equal(graph.rootEntityId, root);
      assert.equal(graph.truncated, false);
      assert.equal(graph.nodes.length, 25);
      assert.equal(new Set(graph.nodes.map((n) => n.entityId)).size, 25, "each node once");
      for (const [depth, layer] of layers.entries()) {
        for (const id of layer) assert.equal(graph.nodes.find((n) => n.entityId === id)?.depth, depth);
      }
      assert.equal(graph.nodes[0]!.entityId, root, "root first");
      assert.equal(graph.nodes[0]!.currentVersion, 1);
      assert.ok(graph.nodes[0]!.title.startsWith("e0"));
      assert.equal(graph.edges.length, 4 + 16 * 5);

      const shallow = ok(await h.call(protocol, M.getEntityGraph, { entityId: root }, editor.token));
      assert.equal(shallow.nodes.length, 9, "default depth 2, both directions");
      const capped = ok(await h.call(protocol, M.getEntityGraph, { entityId: root, depth: 10, maxNodes: 7 }, editor.token));
      assert.equal(capped.nodes.length, 7);
      assert.equal(capped.truncated, true);
      assert.ok(capped.edges.every((e) => capped.nodes.some((n) => n.entityId === e.sourceEntityId) && capped.nodes.some((n) => n.entityId === e.targetEntityId)));
      const up = ok(await h.call(protocol, M.getEntityGraph, { entityId: layers[6]![0], depth: 10, direction: Direction.INCOMING, types: [PART_OF] }, editor.token));
      assert.deepEqual(up.nodes.map((n) => n.depth), [0, 1, 1, 1, 1], "incoming part_of only: the layer above, then a depends_on layer stops it");
    });

    test("access: the walk never enters an entity the caller may not view (nor reaches anything through it); deleted ones only on request", async () => {
      const t = await h.tenantWith(["editor", "viewer"]);
      const [owner, viewer] = t.users;
      const [a, c, d] = await h.entities(t.tenantId, owner!.id, 3);
      const [secret] = await h.entities(t.tenantId, owner!.id, 1, { visibility: "private" });
      await link(owner!, a!, secret!);
      await link(owner!, secret!, c!);
      await link(owner!, a!, d!);
      const mine = ok(await h.call(protocol, M.getEntityGraph, { entityId: a, depth: 3 }, owner!.token));
      assert.equal(mine.nodes.length, 4);
      const theirs = ok(await h.call(protocol, M.getEntityGraph, { entityId: a, depth: 3 }, viewer!.token));
      assert.deepEqual(theirs.nodes.map((n) => n.entityId).sort(), [a, d].sort(), "neither the private entity nor what lies behind it");
      assert.ok(theirs.edges.every((e) => e.sourceEntityId !== secret && e.targetEntityId !== secret));
      assert.deepEqual(failure(await h.call(protocol, M.getEntityGraph, { entityId: secret }, viewer!.token)), NOT_FOUND);
      await h.softDelete(t.tenantId, d!);
      assert.equal(ok(await h.call(protocol, M.getEntityGraph, { entityId: a }, viewer!.token)).nodes.length, 1);
      const withDeleted = ok(await h.call(protocol, M.getEntityGraph, { entityId: a, includeDeleted: true }, viewer!.token));
      assert.deepEqual(withDeleted.nodes.map((n) => [n.entityId, n.deleted]), [[a, false], [d, true]]);
      const other = await h.tenantWith(["owner"]);
      assert.deepEqual(failure(await h.call(protocol, M.getEntityGraph, { entityId: a }, other.users[0]!.token)), NOT_FOUND);
    });

    test("bad input names the field", async () => {
      const t = await h.tenantWith(["viewer"]);
      const token = t.users[0]!.token;
      const id = randomUUID();
      assert.deepEqual(badFields(await h.call(protocol, M.getEntityGraph, { entityId: id, depth: 11 }, token)), ["depth"]);
      assert.deepEqual(badFields(await h.call(protocol, M.getEntityGraph, { entityId: id, maxNodes: 5001 }, token)), ["max_nodes"]);
      assert.deepEqual(badFields(await h.call(protocol, M.getEntityGraph, { entityId: "x" }, token)), ["entity_id"]);
      assert.deepEqual(badFields(await h.call(protocol, M.resolveDependencies, { entityId: id, maxDepth: 11 }, token)), ["max_depth"]);
      assert.deepEqual(badFields(await h.call(protocol, M.resolveDependencies, { entityId: id, types: [RelationshipType.SUGGESTS] }, token)), ["types[0]"]);
      assert.deepEqual(badFields(await h.call(protocol, M.analyzeImpact, { entityId: id, maxDepth: 21 }, token)), ["max_depth"]);
      assert.deepEqual(badFields(await h.call(protocol, M.analyzeImpact, { entityId: id, label: "Not A Label" }, token)), ["label"]);
      assert.deepEqual(failure(await h.call(protocol, M.resolveDependencies, { entityId: id }, token)), NOT_FOUND);
      assert.deepEqual(failure(await h.call(protocol, M.analyzeImpact, { entityId: id }, token)), NOT_FOUND);
    });
  });

  describe(`ResolveDependencies over ${protocol}`, () => {
    test("pins resolve (version, label, latest), conflicts are reported, order is dependencies first, and as of a time the past answer is exact", async () => {
      const t = await h.tenantWith(["editor"]);
      const editor = t.users[0]!;
      const [template, context, snippet, extra] = await h.entities(t.tenantId, editor.id, 4);
      await addVersion(h.db, t.tenantId, context!, editor.id, { title: "context v2" });
      await setLabel(h.db, t.tenantId, context!, "production", 1, editor.id);
      const onContext = await link(editor, template!, context!, DEPENDS, { case: "targetLabel", value: "production" });
      const onSnippet = await link(editor, context!, snippet!, PART_OF);
      await link(editor, template!, snippet!, DEPENDS, { case: "targetVersion", value: 1 });
      const before = await dbNow();

      // After `before`: a new snippet version (latest moves), production moves, a dependency appears, one is deleted.
      await addVersion(h.db, t.tenantId, snippet!, editor.id, { title: "snippet v2" });
      await setLabel(h.db, t.tenantId, context!, "production", 2, editor.id);
      await link(editor, template!, extra!);
      ok(await h.call(protocol, M.deleteRelationship, { relationshipId: onSnippet.id }, editor.token));

      const now = ok(await h.call(protocol, M.resolveDependencies, { entityId: template, types: [DEPENDS, PART_OF] }, editor.token));
      assert.equal(now.complete, true);
      assert.deepEqual(
        now.dependencies.map((d) => [d.entityId, d.dependentEntityId, d.resolutionKind, d.version, d.depth, d.conflicting]).sort(),
        [
          [context, template, ResolutionKind.LABEL, 2, 1, false],
          [snippet, template, ResolutionKind.PINNED, 1, 1, false],
          [extra, template, ResolutionKind.LATEST, 1, 1, false],
        ].sort(),
      );
      assert.equal(now.dependencies.find((d) => d.entityId === context)!.title, "context v2");

      const then = ok(await h.call(protocol, M.resolveDependencies, { entityId: template, types: [DEPENDS, PART_OF], asOfTime: timestampFromDate(before) }, editor.token));
      const summary = then.dependencies.map((d) => [d.entityId, d.dependentEntityId, d.relationshipType, d.version, d.depth, d.conflicting]);
      // Dependencies first: the snippet (a leaf) before the context that has it as a part.
      assert.deepEqual(summary, [
        [snippet, context, PART_OF, 1, 2, false],
        [snippet, template, DEPENDS, 1, 1, false],
        [context, template, DEPENDS, 1, 1, false],
      ], "as of then: production at 1, the snippet's latest was 1, no `extra`, the deleted part_of still there");
      assert.equal(then.dependencies.find((d) => d.relationshipId === onContext.id)!.label, "production");
      assert.deepEqual(then.resolveTime, timestampFromDate(before));

      // Between the snippet's new version and now: the pinned edge says 1, the floating part_of said 2.
      const [pinnedAway] = await h.entities(t.tenantId, editor.id, 1);
      await link(editor, pinnedAway!, context!);
      await link(editor, context!, snippet!, PART_OF);
      await link(editor, pinnedAway!, snippet!, DEPENDS, { case: "targetVersion", value: 1 });
      const conflict = ok(await h.call(protocol, M.resolveDependencies, { entityId: pinnedAway, types: [DEPENDS, PART_OF] }, editor.token));
      const onSnippetEntries = conflict.dependencies.filter((d) => d.entityId === snippet);
      assert.deepEqual(onSnippetEntries.map((d) => [d.version, d.conflicting]).sort(), [[1, true], [2, true]]);
      assert.ok(conflict.dependencies.findIndex((d) => d.entityId === context) > conflict.dependencies.findIndex((d) => d.dependentEntityId === context));
    });

    test("unresolvable dependencies are marked, not fatal; invisible ones carry no id", async () => {
      const t = await h.tenantWith(["editor", "editor"]);
      const [owner, colleague] = t.users;
      const [template, labelled, gone] = await h.entities(t.tenantId, owner!.id, 3);
      const [secret] = await h.entities(t.tenantId, owner!.id, 1, { visibility: "private" });
      await setLabel(h.db, t.tenantId, labelled!, "staging", 1, owner!.id);
      await link(owner!, template!, labelled!, DEPENDS, { case: "targetLabel", value: "staging" });
      await link(owner!, template!, gone!);
      await link(owner!, template!, secret!);
      await h.db.raw("update entity_label set valid_to = now() where tenant_id = ? and entity_id = ? and label = 'staging' and valid_to is null", [t.tenantId, labelled!]);
      await h.softDelete(t.tenantId, gone!);
      const resolved = ok(await h.call(protocol, M.resolveDependencies, { entityId: template }, colleague!.token));
      assert.equal(resolved.complete, false);
      const states = resolved.dependencies.map((d) => [d.entityId, d.state, d.version]).sort((a, b) => String(a[1]).localeCompare(String(b[1])));
      assert.deepEqual(
        states.sort(),
        [
          [labelled, ResolutionState.LABEL_MISSING, undefined],
          [gone, ResolutionState.ENTITY_DELETED, undefined],
          ["", ResolutionState.NOT_VISIBLE, undefined],
        ].sort(),
      );
      assert.ok(resolved.dependencies.every((d) => d.state !== ResolutionState.NOT_VISIBLE || (d.relationshipId === "" && d.title === "")));
    });
  });

  describe(`AnalyzeImpact over ${protocol}`, () => {
    test("transitive dependents with depth, path counts, floating vs pinned, labels; a label's move; limits", async () => {
      const t = await h.tenantWith(["editor"]);
      const editor = t.users[0]!;
      const [snippet, ctxA, ctxB, template, pinnedUser, labelUser] = await h.entities(t.tenantId, editor.id, 6);
      await setLabel(h.db, t.tenantId, snippet!, "production", 1, editor.id);
      await setLabel(h.db, t.tenantId, template!, "production", 1, editor.id);
      // Diamond: template -> ctxA -> snippet, template -> ctxB -> snippet (both floating).
      const aOnSnippet = await link(editor, ctxA!, snippet!);
      await link(editor, ctxB!, snippet!, PART_OF);
      await link(editor, template!, ctxA!, DEPENDS, { case: "targetVersion", value: 1 });
      await link(editor, template!, ctxB!);
      await link(editor, pinnedUser!, snippet!, DEPENDS, { case: "targetVersion", value: 1 });
      await link(editor, labelUser!, snippet!, DEPENDS, { case: "targetLabel", value: "production" });
      await link(editor, labelUser!, template!, RelationshipType.SUGGESTS);

      const impact = ok(await h.call(protocol, M.analyzeImpact, { entityId: snippet }, editor.token));
      const row = (id: string) => impact.impacted.find((n) => n.entityId === id)!;
      assert.equal(impact.impacted.length, 5);
      assert.equal(row(ctxA!).depth, 1);
      assert.equal(row(template!).depth, 2);
      assert.equal(row(template!).pathCount, 2n, "two paths through the diamond");
      assert.equal(row(template!).impact, ImpactKind.AFFECTED, "a pin above does not shield: ctxA's own dependency floats");
      assert.deepEqual(row(template!).labels, ["production"]);
      assert.equal(row(template!).pathRelationshipIds.length, 2);
      assert.equal(row(ctxA!).pathRelationshipIds[0], aOnSnippet.id);
      assert.equal(row(pinnedUser!).impact, ImpactKind.PINNED);
      assert.equal(row(labelUser!).impact, ImpactKind.PINNED, "a new version does not move production");
      assert.deepEqual([impact.affectedCount, impact.pinnedCount, impact.truncated], [3, 2, false]);
      assert.deepEqual(impact.impacted.map((n) => n.depth), [1, 1, 1, 1, 2], "by depth");
      assert.ok(impact.impacted.slice(0, 4).findIndex((n) => n.impact === ImpactKind.PINNED) >= 2, "affected first within a depth");

      const moving = ok(await h.call(protocol, M.analyzeImpact, { entityId: snippet, label: "production" }, editor.token));
      const moved = (id: string) => moving.impacted.find((n) => n.entityId === id)!.impact;
      assert.deepEqual([moved(labelUser!), moved(ctxA!), moved(template!)], [ImpactKind.AFFECTED, ImpactKind.PINNED, ImpactKind.PINNED]);

      const shallow = ok(await h.call(protocol, M.analyzeImpact, { entityId: snippet, maxDepth: 1 }, editor.token));
      assert.deepEqual([shallow.impacted.length, shallow.truncated], [4, true], "the depth cut is reported");
      const few = ok(await h.call(protocol, M.analyzeImpact, { entityId: snippet, maxResults: 2 }, editor.token));
      assert.deepEqual([few.impacted.length, few.affectedCount + few.pinnedCount, few.truncated], [2, 5, true]);
    });
  });
}
