import { afterAll, beforeAll, describe, test } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { createEntity } from "@promptcraft/content/fixtures";
import { graphService } from "@promptcraft/graph";
import { loadConfig, startService, type RunningService } from "@promptcraft/platform";
import { AnalyticsService } from "@promptcraft/proto/promptcraft/analytics/v1/analytics_service_pb";
import { GraphService } from "@promptcraft/proto/promptcraft/graph/v1/graph_service_pb";
import { SuggestionSource } from "@promptcraft/proto/promptcraft/graph/v1/resources_pb";
import { StatsHarness, usageEvent } from "./analytics-e2e-helpers.js";
import { testServiceEnv } from "./identity-e2e-helpers.js";
import { badFields, failure, ok, PROTOCOLS, unaryCall } from "./rpc-outcomes.js";

/**
 * Co-usage end to end, over gRPC and Connect: usage events that share a request id, ingested into
 * analytics; AnalyticsService.GetEntityCoUsage (content decides what the caller sees); and graph's
 * GenerateSuggestions asking it on the caller's behalf (identity, content, analytics and graph
 * running; search is not: meaning is unavailable, said so).
 */

const h = new StatsHarness();
let graph: RunningService;

beforeAll(async () => {
  await h.start();
  graph = await startService(
    graphService,
    loadConfig(graphService.config, { ...testServiceEnv(), IDENTITY_URL: `http://127.0.0.1:${h.identity.grpcPort}`, ANALYTICS_URL: `http://127.0.0.1:${h.analytics.grpcPort}` }),
  );
});
afterAll(async () => {
  await graph?.close();
  await h.close();
});

const A = AnalyticsService.method;

for (const protocol of PROTOCOLS) {
  describe(`co-usage over ${protocol}`, () => {
    test("entities used in the same requests: counted per request, the unviewable left out, suggested by graph with their share", async () => {
      const m = await h.member("editor");
      const other = await h.member("editor", m.tenantId);
      const entity = async (title: string, owner = m.userId, visibility: "tenant" | "private" = "tenant") =>
        (await createEntity(h.db, m.tenantId, owner, { title, visibility })).id;
      const prompt = await entity("Support reply");
      const partner = await entity("Tone guide");
      const once = await entity("Glossary");
      const hidden = await entity("Escalation rubric", other.userId, "private");
      const elsewhere = await entity("Cake recipe");
      const [r1, r2, r3, r4] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
      const use = (entityId: string, requestId: string) => usageEvent({ entityId, requestId });
      ok(
        await h.call(
          protocol,
          A.ingestUsageEvents,
          {
            events: [
              ...[prompt, partner, once, hidden].map((e) => use(e, r1)),
              ...[prompt, partner, hidden].map((e) => use(e, r2)),
              ...[prompt, partner, hidden].map((e) => use(e, r3)),
              use(prompt, r4),
              use(prompt, r4), // twice in one request: one request
              use(elsewhere, randomUUID()),
              use(partner, randomUUID()),
              usageEvent({ entityId: prompt }), // no request id: not counted
            ],
          },
          m.token,
        ),
      );

      const co = ok(await h.call(protocol, A.getEntityCoUsage, { entityId: prompt }, m.token));
      assert.equal(co.entityId, prompt);
      assert.equal(co.requestCount, 4n, "four requests used it");
      assert.deepEqual(
        co.entities.map((e) => [e.entityId, e.sharedRequestCount]),
        [
          [partner, 3n],
          [once, 1n],
        ],
        "most shared first; an entity the caller may not view is left out",
      );
      assert.ok(co.entities.every((e) => e.lastSharedUseTime !== undefined) && co.windowStartTime !== undefined);
      const theirs = ok(await h.call(protocol, A.getEntityCoUsage, { entityId: prompt }, other.token));
      assert.deepEqual(
        theirs.entities.map((e) => e.entityId),
        [...[partner, hidden].sort(), once],
        "its owner sees it (ties by id)",
      );
      assert.deepEqual(ok(await h.call(protocol, A.getEntityCoUsage, { entityId: prompt, maxEntities: 1 }, m.token)).entities.map((e) => e.entityId), [partner]);
      assert.equal(failure(await h.call(protocol, A.getEntityCoUsage, { entityId: hidden }, m.token)).code, "NOT_FOUND", "as content says");
      assert.deepEqual(badFields(await h.call(protocol, A.getEntityCoUsage, { entityId: prompt, days: 91 }, m.token)), ["days"]);
      assert.deepEqual(badFields(await h.call(protocol, A.getEntityCoUsage, { entityId: prompt, maxEntities: 101 }, m.token)), ["max_entities"]);

      const generated = ok(await unaryCall(GraphService, graph, protocol, GraphService.method.generateSuggestions, { entityId: prompt, minScore: 0.5 }, { authorization: `Bearer ${m.token}` }));
      assert.deepEqual(generated.unavailableSources, [SuggestionSource.SIMILARITY], "search is not running here; analytics answered");
      assert.deepEqual(
        generated.suggestions.map((s) => [s.suggestedEntityId, s.source, s.sources, s.score]),
        [[partner, SuggestionSource.CO_USAGE, [SuggestionSource.CO_USAGE], 0.75]],
        "3 of its 4 requests; one shared request is coincidence; the unviewable never",
      );
      assert.match(generated.suggestions[0]!.reason, /^used together in 3 of its 4 requests \(last 30 days\) \(semantic similarity unavailable: /);
    });
  });
}
