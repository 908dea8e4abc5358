import { randomUUID } from "node:crypto";
import assert from "node:assert/strict";
import { afterAll, beforeAll, describe, test } from "vitest";
import { withServiceRole, withTenant, type Knex } from "@promptcraft/db";
import { createLogger } from "@promptcraft/platform";
import { createTenant, createUser, openTestKnex } from "@promptcraft/testing";
import { addVersion, createEntity } from "@promptcraft/content/fixtures";
import { hashEmbedding } from "../providers/local.js";
import { EmbeddingError, type EmbeddingProvider } from "../providers/provider.js";
import { ModelRegistry } from "../providers/registry.js";
import { createReindex } from "../store/reindex.js";
import { enqueueCurrentVersions, enqueueMissingVersions, findMissingEmbeddings } from "../store/queue.js";
import { retryDelayMs, runWorkerPass, type WorkerOptions } from "./pipeline.js";

/*
 * The worker on the test database: each test serves models of its own name, so the worker claims
 * only its items (claim_embedding_jobs filters by model) whatever else runs on the database.
 */

let knex: Knex;
const log = createLogger("search-test", "silent");
const options: WorkerOptions = { claimBatch: 50, maxAttempts: 3, retryBaseMs: 10, leaseMs: 60_000 };

beforeAll(() => {
  knex = openTestKnex();
});
afterAll(async () => {
  await knex.destroy();
});

/** A provider under a unique model name that answers with `answer` and counts the texts it got. */
function fakeProvider(answer: (texts: readonly string[]) => number[][]): EmbeddingProvider & { calls: string[][] } {
  const calls: string[][] = [];
  return {
    model: `test-${randomUUID().slice(0, 8)}`,
    dimensions: 384,
    maxBatch: 2,
    calls,
    embed(texts) {
      calls.push([...texts]);
      return Promise.resolve(answer(texts));
    },
  };
}
const hashing = (texts: readonly string[]) => texts.map((t) => hashEmbedding(t, 384));

async function arrange(titles: string[]) {
  const tenantId = await createTenant(knex);
  const userId = await createUser(knex, tenantId, "owner");
  const ids: string[] = [];
  for (const title of titles) ids.push((await createEntity(knex, tenantId, userId, { title, description: `about ${title}` })).id);
  return { tenantId, userId, ids };
}

function enqueue(tenantId: string, ids: string[], model: string) {
  return withTenant(knex, { service: "search", tenantId }, (trx) => enqueueCurrentVersions(trx, tenantId, ids, [model]));
}

async function embeddings(tenantId: string, model: string) {
  const { rows } = await knex.raw<{ rows: { entity_id: string; version: number; status: string; attempts: number; last_error: string | null; dims: number | null }[] }>(
    "select entity_id, version, status, attempts, last_error, dimensions as dims from embedding where tenant_id = ? and model = ? order by entity_id, version",
    [tenantId, model],
  );
  return rows;
}

async function queued(tenantId: string, model: string) {
  const { rows } = await knex.raw<{ rows: { entity_id: string; version: number; attempts: number; last_error: string | null }[] }>(
    "select entity_id, version, attempts, last_error from embedding_job where tenant_id = ? and model = ?",
    [tenantId, model],
  );
  return rows;
}

/** Makes every queued item of the model due now (instead of waiting out its backoff). */
async function dueNow(model: string) {
  await knex.raw("update embedding_job set run_after = now() where model = ?", [model]);
}

describe("embedding worker", () => {
  test("embeds queued current versions in provider batches; a version superseded while queued is never embedded", async () => {
    const provider = fakeProvider(hashing);
    const registry = new ModelRegistry([{ provider, kind: "local", description: "" }]);
    const { tenantId, userId, ids } = await arrange(["alpha contract", "beta recipe", "gamma notes"]);
    assert.equal(await enqueue(tenantId, ids, provider.model), 3);
    assert.equal(await enqueue(tenantId, ids, provider.model), 0, "queueing again adds nothing");
    await addVersion(knex, tenantId, ids[0]!, userId, { title: "alpha contract v2" });
    assert.equal(await enqueue(tenantId, [ids[0]!], provider.model), 1, "the new version is queued, the old item dropped");
    assert.equal((await queued(tenantId, provider.model)).length, 3);

    const handled = await runWorkerPass(knex, registry, "w1", options, new AbortController().signal, log);
    assert.equal(handled, 3);
    assert.deepEqual(provider.calls.map((c) => c.length), [2, 1], "batches of maxBatch");
    assert.ok(provider.calls.flat().some((t) => t.startsWith("alpha contract v2")));
    assert.ok(!provider.calls.flat().some((t) => t.startsWith("alpha contract\n")), "the superseded text was never sent");
    const rows = await embeddings(tenantId, provider.model);
    assert.deepEqual(
      rows.map((r) => [r.status, r.dims]),
      [["completed", 384], ["completed", 384], ["completed", 384]],
    );
    assert.equal(rows.find((r) => r.entity_id === ids[0])!.version, 2);
    assert.deepEqual(await queued(tenantId, provider.model), []);
  });

  test("unchanged text is not embedded again (content hash), unless forced; reindex counts completed and skipped", async () => {
    const provider = fakeProvider(hashing);
    const registry = new ModelRegistry([{ provider, kind: "local", description: "" }]);
    const { tenantId, userId, ids } = await arrange(["same text"]);
    await enqueue(tenantId, ids, provider.model);
    await runWorkerPass(knex, registry, "w1", options, new AbortController().signal, log);
    assert.equal(provider.calls.length, 1);
    // A change outside the embedded text (status) makes version 2 with the same text.
    await addVersion(knex, tenantId, ids[0]!, userId, { status: "published" });
    await enqueue(tenantId, ids, provider.model);
    await runWorkerPass(knex, registry, "w1", options, new AbortController().signal, log);
    assert.equal(provider.calls.length, 1, "the vector was copied, not embedded");
    assert.deepEqual((await embeddings(tenantId, provider.model)).map((r) => [r.version, r.status]), [[2, "completed"]], "older versions' embeddings go");

    const plain = await withTenant(knex, { service: "search", tenantId }, (trx) =>
      createReindex(trx, tenantId, { model: provider.model, force: false, failedOnly: false, entityIds: null, types: [], creator: userId, requestId: null }),
    );
    assert.equal(plain.total_count, 1);
    await runWorkerPass(knex, registry, "w1", options, new AbortController().signal, log);
    const forced = await withTenant(knex, { service: "search", tenantId }, (trx) =>
      createReindex(trx, tenantId, { model: provider.model, force: true, failedOnly: false, entityIds: ids, types: [], creator: userId, requestId: null }),
    );
    await runWorkerPass(knex, registry, "w1", options, new AbortController().signal, log);
    assert.equal(provider.calls.length, 2, "forced: embedded again");
    const { rows } = await knex.raw<{ rows: { id: string; state: string; completed_count: number; skipped_count: number; failed_count: number }[] }>(
      "select id, state, completed_count, skipped_count, failed_count from embedding_reindex where tenant_id = ? order by created_at",
      [tenantId],
    );
    assert.deepEqual(
      rows.map((r) => [r.id, r.state, r.completed_count, r.skipped_count, r.failed_count]),
      [
        [plain.id, "succeeded", 0, 1, 0],
        [forced.id, "succeeded", 1, 0, 0],
      ],
    );
  });

  test("a failing provider: retried with backoff up to the cap, then failed with the last error; nothing lost meanwhile", async () => {
    let down = true;
    const provider = fakeProvider((texts) => {
      if (down) throw new EmbeddingError("503 from provider", true);
      return hashing(texts);
    });
    const registry = new ModelRegistry([{ provider, kind: "local", description: "" }]);
    const { tenantId, ids } = await arrange(["retry me", "and me"]);
    await enqueue(tenantId, ids, provider.model);
    await runWorkerPass(knex, registry, "w1", options, new AbortController().signal, log);
    let items = await queued(tenantId, provider.model);
    assert.deepEqual(items.map((i) => [i.attempts, i.last_error]), [[1, "503 from provider"], [1, "503 from provider"]], "back in the queue");
    assert.deepEqual((await embeddings(tenantId, provider.model)).map((r) => [r.status, r.attempts]), [["pending", 1], ["pending", 1]]);
    // Not due yet (backoff): a pass right away claims nothing.
    await knex.raw("update embedding_job set run_after = now() + interval '1 hour' where model = ?", [provider.model]);
    assert.equal(await runWorkerPass(knex, registry, "w1", options, new AbortController().signal, log), 0);

    await dueNow(provider.model);
    await runWorkerPass(knex, registry, "w1", options, new AbortController().signal, log);
    await dueNow(provider.model);
    await runWorkerPass(knex, registry, "w1", options, new AbortController().signal, log);
    items = await queued(tenantId, provider.model);
    assert.deepEqual(items, [], "after the third attempt the items leave the queue");
    assert.deepEqual(
      (await embeddings(tenantId, provider.model)).map((r) => [r.status, r.attempts, r.last_error]),
      [["failed", 3, "503 from provider"], ["failed", 3, "503 from provider"]],
    );

    // A reindex of the failed ones brings them back; the provider is up again.
    down = false;
    await withTenant(knex, { service: "search", tenantId }, (trx) =>
      createReindex(trx, tenantId, { model: provider.model, force: false, failedOnly: true, entityIds: null, types: [], creator: "x", requestId: null }),
    );
    await runWorkerPass(knex, registry, "w1", options, new AbortController().signal, log);
    assert.deepEqual((await embeddings(tenantId, provider.model)).map((r) => r.status), ["completed", "completed"]);
  });

  test("a provider answering garbage (wrong size) fails the items at once; a permanent error is not retried", async () => {
    const provider = fakeProvider((texts) => texts.map(() => [1, 0, 0]));
    const registry = new ModelRegistry([{ provider, kind: "local", description: "" }]);
    const { tenantId, ids } = await arrange(["wrong size"]);
    await enqueue(tenantId, ids, provider.model);
    await runWorkerPass(knex, registry, "w1", options, new AbortController().signal, log);
    const [row] = await embeddings(tenantId, provider.model);
    assert.equal(row!.status, "failed");
    assert.match(row!.last_error!, /3 dimensions, the model has 384/);
  });

  test("replicas share the queue: two workers never embed the same item", async () => {
    const provider = fakeProvider(hashing);
    const registry = new ModelRegistry([{ provider, kind: "local", description: "" }]);
    const { tenantId, ids } = await arrange(Array.from({ length: 8 }, (_, i) => `item ${i}`));
    await enqueue(tenantId, ids, provider.model);
    const small = { ...options, claimBatch: 2 };
    await Promise.all([
      runWorkerPass(knex, registry, "a", small, new AbortController().signal, log),
      runWorkerPass(knex, registry, "b", small, new AbortController().signal, log),
    ]);
    const texts = provider.calls.flat();
    assert.equal(texts.length, 8, "each item embedded once");
    assert.equal(new Set(texts).size, 8);
    assert.equal((await embeddings(tenantId, provider.model)).length, 8);
  });

  test("an item leased to a worker that died is taken over when its lease expires", async () => {
    const provider = fakeProvider(hashing);
    const registry = new ModelRegistry([{ provider, kind: "local", description: "" }]);
    const { tenantId, ids } = await arrange(["orphan"]);
    await enqueue(tenantId, ids, provider.model);
    await knex.raw("update embedding_job set locked_by = 'dead', locked_until = now() + interval '1 hour' where model = ?", [provider.model]);
    assert.equal(await runWorkerPass(knex, registry, "w1", options, new AbortController().signal, log), 0, "leased elsewhere");
    await knex.raw("update embedding_job set locked_until = now() - interval '1 second' where model = ?", [provider.model]);
    assert.equal(await runWorkerPass(knex, registry, "w1", options, new AbortController().signal, log), 1);
    assert.equal((await embeddings(tenantId, provider.model))[0]!.status, "completed");
  });
});

describe("a model change", () => {
  test("the versions a model has never seen are found across tenants and queued; queueing again adds nothing; a failed one stays failed", async () => {
    const seen = fakeProvider(hashing);
    const added = fakeProvider(hashing);
    const broken = fakeProvider(() => {
      throw new EmbeddingError("bad request", false);
    });
    const { tenantId, ids } = await arrange(["delta memo", "epsilon brief", "zeta guide"]);
    await enqueue(tenantId, ids, seen.model);
    await runWorkerPass(knex, new ModelRegistry([{ provider: seen, kind: "local", description: "" }]), "w1", options, new AbortController().signal, log);

    const models = [seen.model, added.model, broken.model];
    const missing = async () =>
      (await withServiceRole(knex, "search", (trx) => findMissingEmbeddings(trx, models)))
        .filter((m) => m.tenant_id === tenantId)
        .map((m) => [m.model, m.missing])
        .sort();
    assert.deepEqual(await missing(), [[added.model, 3], [broken.model, 3]].sort(), "the embedded model is not missing");
    const queueMissing = () => withTenant(knex, { service: "search", tenantId }, (trx) => enqueueMissingVersions(trx, tenantId, [added.model, broken.model]));
    assert.equal(await queueMissing(), 6);
    assert.equal(await queueMissing(), 0, "already queued (another replica, a restart)");
    assert.deepEqual(await missing(), [], "queued is not missing");

    const registry = new ModelRegistry([
      { provider: added, kind: "local", description: "" },
      { provider: broken, kind: "local", description: "" },
    ]);
    await runWorkerPass(knex, registry, "w1", options, new AbortController().signal, log);
    assert.deepEqual((await embeddings(tenantId, added.model)).map((r) => r.status), ["completed", "completed", "completed"]);
    assert.deepEqual((await embeddings(tenantId, broken.model)).map((r) => r.status), ["failed", "failed", "failed"]);
    assert.equal(await queueMissing(), 0, "a failed embedding waits for a reindex, it is not retried at every start");
    assert.deepEqual(await missing(), []);
  });
});

test("retry delay: doubles per attempt from the base, capped at 5 minutes; a longer Retry-After wins", () => {
  assert.equal(retryDelayMs(1, 1000), 1000);
  assert.equal(retryDelayMs(3, 1000), 4000);
  assert.equal(retryDelayMs(30, 1000), 300_000);
  assert.equal(retryDelayMs(1, 1000, 7000), 7000);
});
