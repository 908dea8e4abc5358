import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { constants as http2Constants, createServer as createHttp2Server } from "node:http2";
import { createEntity } from "@promptcraft/content/fixtures";
import { graphService } from "@promptcraft/graph";
import { loadConfig, startService } from "@promptcraft/platform";
import { GraphService } from "@promptcraft/proto/promptcraft/graph/v1/graph_service_pb";
import { RelationshipType, SuggestionSource, SuggestionState } from "@promptcraft/proto/promptcraft/graph/v1/resources_pb";
import { badFields, failure, GraphHarness, ok, PROTOCOLS } from "./graph-e2e-helpers.js";
import { testServiceEnv } from "./identity-e2e-helpers.js";
import { unaryCall } from "./rpc-outcomes.js";

/**
 * GraphService suggestions over gRPC and Connect: generate from tags and titles (search and
 * analytics are not running here: structure alone, said so), list, accept (creates the
 * relationship), dismiss; access. Suggestions from meaning: graph-suggestions-semantic.e2e.test.ts;
 * from co-usage: graph-suggestions-co-usage.e2e.test.ts.
 */

const h = new GraphHarness();
beforeAll(() => h.start());
afterAll(() => h.close());

const M = GraphService.method;
const RESOLVED = { code: "FAILED_PRECONDITION", reason: "SUGGESTION_RESOLVED" };

for (const protocol of PROTOCOLS) {
  describe(`suggestions over ${protocol}`, () => {
    test("generate from shared tags and title words (related, dismissed and invisible entities skipped), list, accept, dismiss", async () => {
      const t = await h.tenantWith(["editor", "editor", "viewer"]);
      const [editor, other, viewer] = t.users;
      const make = async (owner: string, title: string, tags: string[], visibility: "tenant" | "private" = "tenant") =>
        (await createEntity(h.db, t.tenantId, owner, { title: `${title} ${randomUUID().slice(0, 4)}`, tags, visibility })).id;
      const refunds = await make(editor!.id, "Refund policy", ["billing", "support"]);
      const twin = await make(editor!.id, "Refund policy details", ["billing", "support"]);
      const cousin = await make(editor!.id, "Invoice wording", ["billing"]);
      const related = await make(editor!.id, "Billing tone", ["billing", "support"]);
      const hidden = await make(other!.id, "Refund secrets", ["billing", "support"], "private");
      await make(editor!.id, "Unrelated", ["cooking"]);
      ok(await h.call(protocol, M.createRelationship, { relationship: { sourceEntityId: related, targetEntityId: refunds, type: RelationshipType.SUGGESTS } }, editor!.token));

      const generated = ok(await h.call(protocol, M.generateSuggestions, { entityId: refunds, minScore: 0.1 }, editor!.token));
      assert.deepEqual(generated.unavailableSources, [SuggestionSource.SIMILARITY, SuggestionSource.CO_USAGE], "search and analytics are down here: structure alone, said so, not an error");
      const made = generated.suggestions;
      assert.deepEqual(made.map((s) => s.suggestedEntityId), [twin, cousin], "best first; the related and the invisible are not suggested");
      assert.ok(!made.some((s) => s.suggestedEntityId === hidden));
      const best = made[0]!;
      assert.equal(best.entityId, refunds);
      assert.equal(best.source, SuggestionSource.STRUCTURE);
      assert.deepEqual(best.sources, [SuggestionSource.STRUCTURE]);
      assert.match(best.reason, /\(semantic similarity unavailable: the search service is unavailable; co-usage unavailable: the analytics service is unavailable\)$/);
      assert.equal(best.state, SuggestionState.PENDING);
      assert.equal(best.relationshipType, RelationshipType.SUGGESTS);
      assert.match(best.reason, /shares tags: billing, support/);
      assert.match(best.reason, /title words in common: refund, policy/);
      assert.ok(best.score > made[1]!.score && best.score <= 1);
      assert.ok(best.suggestedEntityTitle.startsWith("Refund policy details"));
      assert.equal(ok(await h.call(protocol, M.generateSuggestions, { entityId: refunds }, editor!.token)).suggestions.length, 1, "default min score 0.5");

      const listed = ok(await h.call(protocol, M.listSuggestions, { entityId: refunds }, editor!.token));
      assert.deepEqual(listed.suggestions.map((s) => s.id), made.map((s) => s.id));
      const page1 = ok(await h.call(protocol, M.listSuggestions, { pageSize: 1, entityId: refunds }, viewer!.token));
      const page2 = ok(await h.call(protocol, M.listSuggestions, { pageSize: 1, entityId: refunds, pageToken: page1.nextPageToken }, viewer!.token));
      assert.deepEqual([...page1.suggestions, ...page2.suggestions].map((s) => s.id), made.map((s) => s.id), "viewers read, paged by score");

      assert.deepEqual(failure(await h.call(protocol, M.acceptSuggestion, { suggestionId: best.id }, viewer!.token)), { code: "PERMISSION_DENIED", reason: "PERMISSION_INSUFFICIENT" });
      const accepted = ok(await h.call(protocol, M.acceptSuggestion, { suggestionId: best.id, relationshipType: RelationshipType.DEPENDS_ON }, editor!.token));
      assert.equal(accepted.suggestion!.state, SuggestionState.ACCEPTED);
      assert.equal(accepted.suggestion!.relationshipId, accepted.relationship!.id);
      assert.equal(accepted.suggestion!.resolverId, editor!.id);
      assert.deepEqual([accepted.relationship!.sourceEntityId, accepted.relationship!.targetEntityId, accepted.relationship!.type], [refunds, twin, RelationshipType.DEPENDS_ON]);
      assert.equal(accepted.relationship!.strength, best.score, "strength defaults to the score");
      assert.deepEqual(failure(await h.call(protocol, M.acceptSuggestion, { suggestionId: best.id }, editor!.token)), RESOLVED);

      const dismissed = ok(await h.call(protocol, M.dismissSuggestion, { suggestionId: made[1]!.id, reason: "not the same topic" }, editor!.token));
      assert.equal(dismissed.state, SuggestionState.DISMISSED);
      assert.equal(dismissed.dismissReason, "not the same topic");
      assert.deepEqual(failure(await h.call(protocol, M.dismissSuggestion, { suggestionId: made[1]!.id }, editor!.token)), RESOLVED);
      assert.equal(ok(await h.call(protocol, M.generateSuggestions, { entityId: refunds, minScore: 0 }, editor!.token)).suggestions.length, 0, "accepted (now related) and dismissed pairs are not suggested again");
      const decided = ok(await h.call(protocol, M.listSuggestions, { entityId: refunds, states: [SuggestionState.ACCEPTED, SuggestionState.DISMISSED] }, editor!.token));
      assert.equal(decided.suggestions.length, 2);
      assert.equal(ok(await h.call(protocol, M.listSuggestions, {}, other!.token)).suggestions.length, 0, "nothing pending remains in the tenant");
    });

    test("accepting runs CreateRelationship's rules: a cycle is refused and the suggestion stays pending", async () => {
      const t = await h.tenantWith(["editor"]);
      const editor = t.users[0]!;
      const a = (await createEntity(h.db, t.tenantId, editor.id, { title: `Shared alpha ${randomUUID()}`, tags: ["x", "y"], visibility: "tenant" })).id;
      const b = (await createEntity(h.db, t.tenantId, editor.id, { title: `Shared beta ${randomUUID()}`, tags: ["x", "y"], visibility: "tenant" })).id;
      const [s] = ok(await h.call(protocol, M.generateSuggestions, { entityId: a }, editor.token)).suggestions;
      assert.equal(s?.suggestedEntityId, b);
      const c = (await createEntity(h.db, t.tenantId, editor.id, { title: "c", visibility: "tenant" })).id;
      ok(await h.call(protocol, M.createRelationship, { relationship: { sourceEntityId: b, targetEntityId: c, type: RelationshipType.DEPENDS_ON } }, editor.token));
      ok(await h.call(protocol, M.createRelationship, { relationship: { sourceEntityId: c, targetEntityId: a, type: RelationshipType.PART_OF } }, editor.token));
      assert.deepEqual(failure(await h.call(protocol, M.acceptSuggestion, { suggestionId: s.id, relationshipType: RelationshipType.DEPENDS_ON }, editor.token)), {
        code: "FAILED_PRECONDITION",
        reason: "RELATIONSHIP_CYCLE",
      });
      assert.equal(ok(await h.call(protocol, M.listSuggestions, { entityId: a }, editor.token)).suggestions[0]?.state, SuggestionState.PENDING);
    });

    test("bad input, unknown ids and other tenants", async () => {
      const t = await h.tenantWith(["editor"]);
      const u = await h.tenantWith(["owner"]);
      const editor = t.users[0]!;
      const a = (await createEntity(h.db, t.tenantId, editor.id, { title: "Doc one", tags: ["k"], visibility: "tenant" })).id;
      await createEntity(h.db, t.tenantId, editor.id, { title: "Doc two", tags: ["k"], visibility: "tenant" });
      const [s] = ok(await h.call(protocol, M.generateSuggestions, { entityId: a, minScore: 0 }, editor.token)).suggestions;
      assert.deepEqual(badFields(await h.call(protocol, M.generateSuggestions, { entityId: a, maxSuggestions: 51 }, editor.token)), ["max_suggestions"]);
      assert.deepEqual(badFields(await h.call(protocol, M.listSuggestions, { minScore: 2 }, editor.token)), ["min_score"]);
      assert.deepEqual(badFields(await h.call(protocol, M.dismissSuggestion, { suggestionId: s!.id, reason: "x".repeat(1001) }, editor.token)), ["reason"]);
      assert.equal(failure(await h.call(protocol, M.acceptSuggestion, { suggestionId: randomUUID() }, editor.token)).code, "NOT_FOUND");
      const stranger = u.users[0]!.token;
      assert.equal(failure(await h.call(protocol, M.acceptSuggestion, { suggestionId: s!.id }, stranger)).code, "NOT_FOUND");
      assert.equal(failure(await h.call(protocol, M.generateSuggestions, { entityId: a }, stranger)).code, "NOT_FOUND");
      assert.equal(ok(await h.call(protocol, M.listSuggestions, {}, stranger)).suggestions.length, 0);
    });
  });
}

test("a peer whose process dies mid-call (its streams reset, read as CANCELED): that source unavailable, not the call cancelled", async () => {
  // An analytics that resets every stream, as a killed process's connection does.
  const resetting = createHttp2Server((_req, res) => res.stream.close(http2Constants.NGHTTP2_CANCEL));
  await new Promise<void>((resolve) => resetting.listen(0, "127.0.0.1", resolve));
  const port = (resetting.address() as { port: number }).port;
  const graph = await startService(
    graphService,
    loadConfig(graphService.config, { ...testServiceEnv(), IDENTITY_URL: `http://127.0.0.1:${h.identity.grpcPort}`, ANALYTICS_URL: `http://127.0.0.1:${port}` }),
  );
  try {
    const t = await h.tenantWith(["editor"]);
    const editor = t.users[0]!;
    const refunds = (await createEntity(h.db, t.tenantId, editor.id, { title: "Refund policy", tags: ["billing"], visibility: "tenant" })).id;
    const twin = (await createEntity(h.db, t.tenantId, editor.id, { title: "Refund policy details", tags: ["billing"], visibility: "tenant" })).id;
    for (const protocol of PROTOCOLS) {
      const generated = ok(await unaryCall(GraphService, graph, protocol, M.generateSuggestions, { entityId: refunds }, { authorization: `Bearer ${editor.token}` }));
      assert.deepEqual(generated.unavailableSources, [SuggestionSource.SIMILARITY, SuggestionSource.CO_USAGE]);
      assert.deepEqual(generated.suggestions.map((s) => s.suggestedEntityId), [twin]);
      assert.match(generated.suggestions[0]!.reason, /co-usage unavailable: the analytics service is unavailable\)$/);
    }
  } finally {
    await graph.close();
    resetting.close();
  }
});
