import { describe, test } from "vitest";
import assert from "node:assert/strict";
import { mergeSources, structureScore } from "./suggestions.js";

const self = { title: "Refund policy", tags: ["billing", "support"] };

describe("structureScore", () => {
  test("tags weigh 0.7 and title words 0.3, each a Jaccard index; short words ignored", () => {
    assert.deepEqual(structureScore(self, { title: "Refund of a policy", tags: ["billing"] }), {
      score: 0.65, // 0.7 × 1/2 + 0.3 × 2/2
      reason: "shares tags: billing; title words in common: refund, policy",
    });
    assert.equal(structureScore(self, { title: "Cake", tags: [] }).score, 0);
  });
});

describe("mergeSources", () => {
  const candidate = { id: "c", title: "Money back", tags: ["billing"] };

  test("meaning alone: the semantic score as strength, a reason naming it", () => {
    assert.deepEqual(mergeSources({ ...candidate, tags: [] }, self, { semantic: { score: 0.8765, model: "m" } }), {
      suggestedEntityId: "c",
      score: 0.877,
      kind: "similar",
      sources: ["similar"],
      reason: "88% similar in meaning (embeddings, m)",
    });
  });

  test("both sources: one suggestion, the best score and its source, both reasons", () => {
    const low = mergeSources(candidate, self, { semantic: { score: 0.2, model: "m" } });
    assert.deepEqual([low.score, low.kind, low.sources], [0.35, "dependency", ["similar", "dependency"]]);
    assert.equal(low.reason, "20% similar in meaning (embeddings, m); shares tags: billing");
    const high = mergeSources(candidate, self, { semantic: { score: 0.9, model: "m" } });
    assert.deepEqual([high.score, high.kind], [0.9, "similar"]);
  });

  test("search unavailable: structure alone, said so", () => {
    const merged = mergeSources(candidate, self, { semanticUnavailable: "the search service is unavailable" });
    assert.deepEqual([merged.score, merged.kind, merged.sources], [0.35, "dependency", ["dependency"]]);
    assert.equal(merged.reason, "shares tags: billing (semantic similarity unavailable: the search service is unavailable)");
  });

  test("co-usage: the share of the entity's requests that used the candidate too; a single shared request is no co-usage", () => {
    const merged = mergeSources({ ...candidate, tags: [] }, self, { coUsage: { sharedRequests: 6, requestCount: 8, days: 30 } });
    assert.deepEqual(merged, { suggestedEntityId: "c", score: 0.75, kind: "co_used", sources: ["co_used"], reason: "used together in 6 of its 8 requests (last 30 days)" });
    const once = mergeSources(candidate, self, { coUsage: { sharedRequests: 1, requestCount: 1, days: 30 } });
    assert.deepEqual([once.score, once.kind, once.sources], [0.35, "dependency", ["dependency"]]);
    const all = mergeSources(candidate, self, { semantic: { score: 0.6, model: "m" }, coUsage: { sharedRequests: 2, requestCount: 10, days: 30 } });
    assert.deepEqual([all.score, all.kind, all.sources], [0.6, "similar", ["similar", "co_used", "dependency"]]);
    assert.equal(all.reason, "60% similar in meaning (embeddings, m); used together in 2 of its 10 requests (last 30 days); shares tags: billing");
  });

  test("both peers unavailable: each said", () => {
    const merged = mergeSources(candidate, self, { semanticUnavailable: "the entity is not embedded yet", coUsageUnavailable: "the analytics service is unavailable" });
    assert.equal(merged.reason, "shares tags: billing (semantic similarity unavailable: the entity is not embedded yet; co-usage unavailable: the analytics service is unavailable)");
  });
});
