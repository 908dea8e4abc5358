import { randomUUID } from "node:crypto";
import assert from "node:assert/strict";
import { afterAll, beforeAll, describe, test } from "vitest";
import { withTenant, type Knex } from "@promptcraft/db";
import { UnavailableError } from "@promptcraft/platform";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import { createTenant, createUser, openTestKnex } from "@promptcraft/testing";
import { createEntity } from "@promptcraft/content/fixtures";
import { hashEmbedding } from "../providers/local.js";
import { EmbeddingError, type EmbeddingProvider } from "../providers/provider.js";
import { ModelRegistry } from "../providers/registry.js";
import { enqueueCurrentVersions } from "../store/queue.js";
import type { Caller } from "./caller.js";
import { fusedScore, searchEntities, semanticScore, type SearchInput } from "./search.js";

/* Search when the provider is down or behind: full text keeps answering, semantic says what it cannot see yet. */

let knex: Knex;
beforeAll(() => {
  knex = openTestKnex("search-domain");
});
afterAll(async () => {
  await knex.destroy();
});

function provider(up: () => boolean): EmbeddingProvider {
  return {
    model: `test-${randomUUID().slice(0, 8)}`,
    dimensions: 384,
    maxBatch: 16,
    embed(texts) {
      if (!up()) return Promise.reject(new EmbeddingError("connection refused", true, 3000));
      return Promise.resolve(texts.map((t) => hashEmbedding(t, 384)));
    },
  };
}

const input = (query: string, mode: SearchInput["mode"]): SearchInput => ({
  query,
  mode,
  model: "",
  semanticWeight: 0.5,
  minScore: 0,
  pageSize: 10,
  pageToken: "",
  filters: { types: [], tags: [], statuses: [], labels: [], owner: null, updatedAfter: null, updatedBefore: null },
});

describe("search with the provider down or behind", () => {
  test("hybrid answers from full text (mode says so); semantic is UNAVAILABLE with a retry delay; unembedded versions are counted", async () => {
    let up = false;
    const p = provider(() => up);
    const registry = new ModelRegistry([{ provider: p, kind: "openai_compatible", description: "" }]);
    const tenantId = await createTenant(knex);
    const userId = await createUser(knex, tenantId, "owner");
    const ids = [
      (await createEntity(knex, tenantId, userId, { title: "Incident postmortem template" })).id,
      (await createEntity(knex, tenantId, userId, { title: "Incident response runbook" })).id,
    ];
    await withTenant(knex, { service: "search", tenantId }, (trx) => enqueueCurrentVersions(trx, tenantId, ids, [p.model]));
    const caller: Caller = { tenantId, userId, role: "owner", kind: "access_token", signal: new AbortController().signal };
    const deps = { db: knex, registry, tuning: { efSearch: 40, maxScanTuples: 1000 } };

    const hybrid = await searchEntities(deps, caller, input("incident", "hybrid"));
    assert.equal(hybrid.mode, "full_text");
    assert.equal(hybrid.model, "");
    assert.deepEqual(hybrid.hits.map((h) => h.entityId).sort(), [...ids].sort());

    await assert.rejects(searchEntities(deps, caller, input("incident", "semantic")), (err: unknown) => {
      assert.ok(err instanceof UnavailableError);
      assert.equal(err.reason, ErrorReason.EMBEDDING_PROVIDER_UNAVAILABLE);
      assert.equal(err.retryAfterMs, 3000);
      return true;
    });

    up = true;
    const semantic = await searchEntities(deps, caller, input("incident", "semantic"));
    assert.equal(semantic.mode, "semantic");
    assert.deepEqual(semantic.hits, [], "nothing embedded yet");
    assert.equal(semantic.unembeddedCount, 2, "and it says how many it cannot see");
  });
});

test("scores: semantic = max(0, cosine); fused = 61 · (w/(60+rs) + (1−w)/(60+rt)), 1 when first on both sides", () => {
  assert.equal(semanticScore(0.8), 0.8);
  assert.equal(semanticScore(-0.3), 0);
  const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} ≈ ${b}`);
  close(fusedScore(1, 1, 0.5), 1);
  close(fusedScore(1, undefined, 0.7), 0.7);
  close(fusedScore(undefined, 1, 0.7), 0.3);
  close(fusedScore(2, undefined, 1), 61 / 62);
  assert.ok(fusedScore(1, 2, 0.5) > fusedScore(2, 2, 0.5));
});
