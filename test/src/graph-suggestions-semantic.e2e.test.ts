import { afterAll, beforeAll, describe, test } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { createServer, type Server, type Socket } from "node:net";
import type { DescMessage, DescMethodUnary, MessageInitShape } from "@bufbuild/protobuf";
import { createEntity } from "@promptcraft/content/fixtures";
import { analyticsService } from "@promptcraft/analytics";
import { graphService } from "@promptcraft/graph";
import { loadConfig, startService, type RunningService } from "@promptcraft/platform";
import { Visibility } from "@promptcraft/proto/promptcraft/content/v1/resources_pb";
import { GraphService } from "@promptcraft/proto/promptcraft/graph/v1/graph_service_pb";
import { SuggestionSource } from "@promptcraft/proto/promptcraft/graph/v1/resources_pb";
import { SearchService } from "@promptcraft/proto/promptcraft/search/v1/search_service_pb";
import { testServiceEnv } from "./identity-e2e-helpers.js";
import { unaryCall } from "./rpc-outcomes.js";
import { ok, PROTOCOLS, SearchHarness } from "./search-e2e-helpers.js";

/**
 * GraphService.GenerateSuggestions from meaning, over gRPC and Connect: graph asks search's
 * FindSimilarEntities on the caller's behalf (identity, content, search, analytics and graph running;
 * entities written through content and embedded by search's pipeline). Search down:
 * graph-suggestions.e2e.test.ts.
 */

const h = new SearchHarness();
let analytics: RunningService;
let graph: RunningService;
/** A graph whose search accepts connections and never answers (a hung peer). */
let graphOfSilentSearch: RunningService;
let silentSearch: Server;
const silentSockets = new Set<Socket>();

beforeAll(async () => {
  await h.start();
  silentSearch = createServer((socket) => void silentSockets.add(socket));
  await new Promise<void>((resolve) => silentSearch.listen(0, "127.0.0.1", resolve));
  const silentPort = (silentSearch.address() as { port: number }).port;
  const identityUrl = `http://127.0.0.1:${h.identity.grpcPort}`;
  analytics = await startService(analyticsService, loadConfig(analyticsService.config, { ...testServiceEnv(), IDENTITY_URL: identityUrl, CONTENT_URL: `http://127.0.0.1:${h.content.grpcPort}` }));
  const graphEnv = { ...testServiceEnv(), IDENTITY_URL: identityUrl, ANALYTICS_URL: `http://127.0.0.1:${analytics.grpcPort}` };
  graph = await startService(graphService, loadConfig(graphService.config, { ...graphEnv, SEARCH_URL: `http://127.0.0.1:${h.search.grpcPort}` }));
  graphOfSilentSearch = await startService(graphService, loadConfig(graphService.config, { ...graphEnv, SEARCH_URL: `http://127.0.0.1:${silentPort}` }));
});
afterAll(async () => {
  await graph?.close();
  await graphOfSilentSearch?.close();
  await analytics?.close();
  for (const socket of silentSockets) socket.destroy();
  silentSearch?.close();
  await h.close();
});

function graphCall<I extends DescMessage, O extends DescMessage>(
  protocol: (typeof PROTOCOLS)[number],
  method: DescMethodUnary<I, O>,
  request: MessageInitShape<I>,
  token: string,
  service: RunningService = graph,
) {
  return unaryCall(GraphService, service, protocol, method, request, { authorization: `Bearer ${token}` });
}

const REFUND_TEXT = "Customers may return damaged goods within thirty days of delivery for a full refund of the purchase price, shipping included.";

for (const protocol of PROTOCOLS) {
  describe(`suggestions from meaning over ${protocol}`, () => {
    test("similar texts are suggested with their similarity and a semantic reason, merged with structure; the unviewable never", async () => {
      const t = await h.tenantWith(["editor", "editor"]);
      const [editor, other] = [t.users[0]!, t.users[1]!];
      const tag = `t${randomUUID().slice(0, 6)}`;
      const refunds = await h.createEntity(editor, { title: "Refund policy", tags: [tag], text: REFUND_TEXT });
      // Nothing in common by structure (no tag, no title word): only meaning can find it.
      const reworded = await h.createEntity(editor, { title: "Money back rules", text: `${REFUND_TEXT} Contact support first.` });
      // Both: the same tag and a title word, and the same text.
      const twin = await h.createEntity(editor, { title: "Refund notes", tags: [tag], text: REFUND_TEXT });
      const unrelated = await h.createEntity(editor, { title: "Chocolate cake", text: "Whisk eggs with sugar, fold in flour and cocoa, bake forty minutes at one hundred eighty degrees." });
      const hidden = await h.createEntity(other, { title: "Money back secrets", text: REFUND_TEXT, visibility: Visibility.PRIVATE });
      await h.waitEmbedded(editor, [refunds, reworded, twin, unrelated]);
      await h.waitEmbedded(other, [hidden]);

      const similar = ok(await h.searchCall(protocol, SearchService.method.findSimilarEntities, { entityId: refunds }, editor.token));
      const semanticOf = new Map(similar.results.map((r) => [r.entityId, r.score]));
      const generated = ok(await graphCall(protocol, GraphService.method.generateSuggestions, { entityId: refunds, minScore: 0.5 }, editor.token));
      assert.deepEqual(generated.unavailableSources, [], "search and analytics answered");
      const byId = new Map(generated.suggestions.map((s) => [s.suggestedEntityId, s]));
      assert.ok(!byId.has(hidden), "another user's private entity is never suggested");
      assert.ok(!byId.has(unrelated), "an unrelated text is not similar enough");

      const meaningOnly = byId.get(reworded);
      assert.ok(meaningOnly, "the reworded text is suggested from meaning alone");
      assert.equal(meaningOnly.source, SuggestionSource.SIMILARITY);
      assert.deepEqual(meaningOnly.sources, [SuggestionSource.SIMILARITY]);
      assert.equal(meaningOnly.score, Math.round(semanticOf.get(reworded)! * 1000) / 1000, "strength = search's semantic score");
      assert.match(meaningOnly.reason, new RegExp(`^${Math.round(semanticOf.get(reworded)! * 100)}% similar in meaning \\(embeddings, local-hash-384\\)$`));

      const both = byId.get(twin);
      assert.ok(both, "the twin is suggested");
      assert.deepEqual([...both.sources].sort(), [SuggestionSource.SIMILARITY, SuggestionSource.STRUCTURE], "one suggestion for the pair, both sources");
      assert.ok(both.score >= Math.round(semanticOf.get(twin)! * 1000) / 1000, "the best of its sources' scores");
      assert.match(both.reason, /% similar in meaning/);
      assert.match(both.reason, new RegExp(`shares tags: ${tag}`));
      assert.match(both.reason, /title words in common: refund/);

      const again = ok(await graphCall(protocol, GraphService.method.generateSuggestions, { entityId: refunds, minScore: 0.5 }, editor.token));
      assert.deepEqual(again.suggestions.map((s) => s.id).sort(), generated.suggestions.map((s) => s.id).sort(), "generating again updates the pending suggestions, one per pair");
      const listed = ok(await graphCall(protocol, GraphService.method.listSuggestions, { entityId: refunds }, editor.token));
      assert.equal(listed.suggestions.length, generated.suggestions.length);
      assert.deepEqual(listed.suggestions.find((s) => s.suggestedEntityId === twin)?.sources.slice().sort(), [SuggestionSource.SIMILARITY, SuggestionSource.STRUCTURE]);
    });

    test("search hanging: structure alone after the deadline, said so, not an error", async () => {
      const t = await h.tenantWith(["editor"]);
      const editor = t.users[0]!;
      const tag = `t${randomUUID().slice(0, 6)}`;
      const refunds = await h.createEntity(editor, { title: "Refund policy", tags: [tag], text: REFUND_TEXT });
      const reworded = await h.createEntity(editor, { title: "Money back rules", text: REFUND_TEXT });
      const tagged = await h.createEntity(editor, { title: "Invoice wording", tags: [tag], text: "Invoices are sent monthly." });
      await h.waitEmbedded(editor, [refunds, reworded, tagged]);
      const generated = ok(await graphCall(protocol, GraphService.method.generateSuggestions, { entityId: refunds, minScore: 0.5 }, editor.token, graphOfSilentSearch));
      assert.deepEqual(generated.unavailableSources, [SuggestionSource.SIMILARITY]);
      assert.deepEqual(generated.suggestions.map((s) => s.suggestedEntityId), [tagged], "only what structure finds");
      assert.deepEqual(generated.suggestions[0]!.sources, [SuggestionSource.STRUCTURE]);
      assert.match(generated.suggestions[0]!.reason, /\(semantic similarity unavailable: the search service did not answer in time\)$/);
    });

    test("the entity not embedded yet: structure alone, said so", async () => {
      const t = await h.tenantWith(["editor"]);
      const editor = t.users[0]!;
      // Written straight to the tables (content's fixtures), not through content: no event, so search never embeds them.
      const tag = `t${randomUUID().slice(0, 6)}`;
      const fresh = (await createEntity(h.db, t.tenantId, editor.id, { title: "Fresh draft", tags: [tag], visibility: "tenant" })).id;
      const sibling = (await createEntity(h.db, t.tenantId, editor.id, { title: "Older draft", tags: [tag], visibility: "tenant" })).id;
      const generated = ok(await graphCall(protocol, GraphService.method.generateSuggestions, { entityId: fresh }, editor.token));
      assert.deepEqual(generated.unavailableSources, [SuggestionSource.SIMILARITY]);
      assert.deepEqual(generated.suggestions.map((s) => [s.suggestedEntityId, s.source]), [[sibling, SuggestionSource.STRUCTURE]]);
      assert.match(generated.suggestions[0]!.reason, /\(semantic similarity unavailable: the entity is not embedded yet\)$/);
    });
  });
}
