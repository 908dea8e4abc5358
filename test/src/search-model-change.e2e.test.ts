import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { FakeEmbeddingsServer } from "@promptcraft/testing";
import { EmbeddingState } from "@promptcraft/proto/promptcraft/search/v1/resources_pb";
import { SearchService } from "@promptcraft/proto/promptcraft/search/v1/search_service_pb";
import { ok, PROTOCOLS, SearchHarness } from "./search-e2e-helpers.js";

/**
 * A model change triggers a reindex: search runs with the local model only while entities are
 * written and embedded, then restarts with an OpenAI-compatible model beside it (against a local
 * server speaking that API). The versions written before the change are embedded by the new model
 * without any call: the pipeline's first pass finds what a configured model has not seen and queues it.
 */

const MODEL = "fake-embed-384";
const LOCAL = "local-hash-384";
const h = new SearchHarness();
let fake: FakeEmbeddingsServer;
beforeAll(async () => {
  fake = await FakeEmbeddingsServer.start({ dimensions: 384 });
  await h.start();
});
afterAll(async () => {
  await h.close();
  await fake?.close();
});

const S = SearchService.method;

describe("a model added to the configuration", () => {
  test("embeds the current versions written before it, without any call; the stats show the progress", async () => {
    const t = await h.tenantWith(["editor"]);
    const editor = t.users[0]!;
    const titles = ["refund policy", "onboarding checklist", "incident runbook"];
    const ids: string[] = [];
    for (const title of titles) ids.push(await h.createEntity(editor, { title, text: `the ${title} of the support team` }));
    await h.waitEmbedded(editor, ids);
    const before = ok(await h.searchCall("grpc", S.getEmbeddingStatus, { entityId: ids[0]! }, editor.token));
    assert.deepEqual(before.embeddings.map((e) => e.model), [LOCAL], "only the local model is configured");

    await h.restartSearch({ EMBEDDING_PROVIDER: "openai", EMBEDDING_BASE_URL: fake.baseUrl, EMBEDDING_MODEL: MODEL, EMBEDDING_DIMENSIONS: "384" });

    let counts;
    for (let i = 0; i < 1200; i++) {
      counts = ok(await h.searchCall("grpc", S.getEmbeddingStats, { model: MODEL }, editor.token)).models[0];
      if (counts && counts.completedCount === BigInt(ids.length)) break;
      await sleep(50);
    }
    assert.deepEqual(
      [counts?.model, counts?.completedCount, counts?.pendingCount, counts?.missingCount, counts?.failedCount],
      [MODEL, 3n, 0n, 0n, 0n],
      "every version written before the change is embedded by the new model",
    );
    const sent = fake.requests.flatMap((r) => {
      const input = (r.body as { input?: string | string[] }).input;
      return Array.isArray(input) ? input : input ? [input] : [];
    });
    for (const title of titles) assert.ok(sent.some((text) => text.startsWith(title)), `${title} was sent to the new model`);
    for (const protocol of PROTOCOLS) {
      const status = ok(await h.searchCall(protocol, S.getEmbeddingStatus, { entityId: ids[1]! }, editor.token));
      assert.deepEqual(
        status.embeddings.map((e) => [e.model, e.state]),
        [[MODEL, EmbeddingState.COMPLETED], [LOCAL, EmbeddingState.COMPLETED]],
      );
    }
    const local = ok(await h.searchCall("connect", S.getEmbeddingStats, { model: LOCAL }, editor.token)).models[0];
    assert.deepEqual([local?.completedCount, local?.missingCount], [3n, 0n], "the local model's embeddings are untouched");
  });
});
