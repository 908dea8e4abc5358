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
    assert.deepEqual(mergeSources({ ...candidate, tags: [] }, self, { score: 0.8765, model: "m" }, undefined), {
      suggestedEntityId: "c",
      score: 0.877,
      kind: "similar",
      sources: ["similar"],
      reason: "88% similar in meaning (embeddings, m)",
    });
  });

  test("both sources: one suggestion, the best score and its source, both reasons", () => {
    const low = mergeSources(candidate, self, { score: 0.2, model: "m" }, undefined);
    assert.deepEqual([low.score, low.kind, low.sources], [0.35, "dependency", ["similar", "dependency"]]);
    assert.equal(low.reason, "20% similar in meaning (embeddings, m); shares tags: billing");
    const high = mergeSources(candidate, self, { score: 0.9, model: "m" }, undefined);
    assert.deepEqual([high.score, high.kind], [0.9, "similar"]);
  });

  test("search unavailable: structure alone, said so", () => {
    const merged = mergeSources(candidate, self, undefined, "the search service is unavailable");
    assert.deepEqual([merged.score, merged.kind, merged.sources], [0.35, "dependency", ["dependency"]]);
    assert.equal(merged.reason, "shares tags: billing (semantic similarity unavailable: the search service is unavailable; from tags and titles only)");
  });
});
