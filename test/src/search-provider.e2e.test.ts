import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { FakeEmbeddingsServer, openAiError } from "@promptcraft/testing";
import { EmbeddingJobState, EmbeddingProvider, EmbeddingState, SearchMode } from "@promptcraft/proto/promptcraft/search/v1/resources_pb";
import { SearchService } from "@promptcraft/proto/promptcraft/search/v1/search_service_pb";
import type { TestUser } from "./content-e2e-helpers.js";
import { ok, PROTOCOLS, SearchHarness } from "./search-e2e-helpers.js";

/**
 * The search service with an OpenAI-compatible provider (EMBEDDING_PROVIDER=openai), against a local
 * server that speaks that API: the provider's model is the default beside the local one, the pipeline
 * embeds through it with the key, and a provider that fails leaves the local model and full-text
 * search working while its jobs retry and then fail with the provider's error (never the key).
 */

const MODEL = "fake-embed-384";
const API_KEY = "sk-test-0123456789abcdefghijklmnop";
const h = new SearchHarness();
let fake: FakeEmbeddingsServer;
beforeAll(async () => {
  fake = await FakeEmbeddingsServer.start({ dimensions: 384, apiKey: API_KEY });
  await h.start({
    EMBEDDING_PROVIDER: "openai",
    EMBEDDING_BASE_URL: fake.baseUrl,
    EMBEDDING_API_KEY: API_KEY,
    EMBEDDING_MODEL: MODEL,
    EMBEDDING_DIMENSIONS: "384",
    EMBEDDING_MAX_ATTEMPTS: "3",
    EMBEDDING_RETRY_BASE_MS: "20",
  });
});
afterAll(async () => {
  await h.close();
  await fake?.close();
});

const S = SearchService.method;

/** The state and last error of `model`'s embedding of the entity's current version, once it is final. */
async function finalState(who: TestUser, entityId: string, model: string): Promise<{ state: EmbeddingState; lastError: string; attempts: number }> {
  for (let i = 0; i < 1200; i++) {
    const status = ok(await h.searchCall("grpc", S.getEmbeddingStatus, { entityId }, who.token));
    const e = status.embeddings.find((x) => x.model === model);
    if (e && (e.state === EmbeddingState.COMPLETED || e.state === EmbeddingState.FAILED)) return { state: e.state, lastError: e.lastError, attempts: e.attempts };
    await sleep(50);
  }
  throw new Error(`${model} never finished embedding ${entityId}`);
}

for (const protocol of PROTOCOLS) {
  describe(`an OpenAI-compatible provider over ${protocol}`, () => {
    test("its model is the default beside the local one; the pipeline embeds through it with the key", async () => {
      const t = await h.tenantWith(["editor"]);
      const editor = t.users[0]!;
      const models = ok(await h.searchCall(protocol, S.listEmbeddingModels, {}, editor.token)).models;
      assert.deepEqual(
        models.map((m) => [m.name, m.provider, m.dimensions, m.usedByDefault]),
        [
          [MODEL, EmbeddingProvider.OPENAI_COMPATIBLE, 384, true],
          ["local-hash-384", EmbeddingProvider.LOCAL, 384, false],
        ],
      );
      const before = fake.requests.length;
      const id = await h.createEntity(editor, { title: `provider ${protocol}`, text: "shipping policy for refunds" });
      assert.equal((await finalState(editor, id, MODEL)).state, EmbeddingState.COMPLETED);
      assert.equal((await finalState(editor, id, "local-hash-384")).state, EmbeddingState.COMPLETED);
      const sent = fake.requests.slice(before);
      assert.ok(sent.length > 0 && sent.every((r) => r.headers.authorization === `Bearer ${API_KEY}`), "every call carries the key");
      assert.ok(sent.some((r) => (r.body as { model?: string }).model === MODEL));
    });
  });
}

describe("a failing provider", () => {
  test("its jobs retry, then fail with the provider's error (not the key); the local model and full text keep working; a reindex of the failed ones succeeds once it is back", async () => {
    const t = await h.tenantWith(["admin"]);
    const admin = t.users[0]!;
    fake.handle(() => ({ ...openAiError(503, "server_error", null, "The upstream is overloaded."), headers: { "retry-after": "0" } }));
    const word = `zephyrine${Date.now()}`;
    const id = await h.createEntity(admin, { title: `failing ${word}`, text: "a context about outages" });
    const failed = await finalState(admin, id, MODEL);
    assert.equal(failed.state, EmbeddingState.FAILED);
    assert.equal(failed.attempts, 3, "EMBEDDING_MAX_ATTEMPTS");
    assert.match(failed.lastError, /503|overloaded/);
    assert.ok(!failed.lastError.includes(API_KEY), "the key never appears in an error");
    assert.equal((await finalState(admin, id, "local-hash-384")).state, EmbeddingState.COMPLETED, "one failing provider does not block another");

    const text = ok(await h.searchCall("grpc", S.searchEntities, { query: word, mode: SearchMode.FULL_TEXT }, admin.token));
    assert.deepEqual(text.results.map((r) => r.entityId), [id], "full text answers while the provider is down");

    fake.handle(undefined);
    const job = ok(await h.searchCall("connect", S.reindexEntities, { entityIds: [id], failedOnly: true, model: MODEL }, admin.token));
    let done = job;
    for (let i = 0; i < 600 && done.state !== EmbeddingJobState.SUCCEEDED && done.state !== EmbeddingJobState.FAILED; i++) {
      await sleep(50);
      done = ok(await h.searchCall("grpc", S.getEmbeddingJob, { jobId: job.id }, admin.token));
    }
    assert.equal(done.state, EmbeddingJobState.SUCCEEDED);
    assert.equal((await finalState(admin, id, MODEL)).state, EmbeddingState.COMPLETED);
  });
});
