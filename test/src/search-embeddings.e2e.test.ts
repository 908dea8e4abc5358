import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { EntityType } from "@promptcraft/proto/promptcraft/content/v1/resources_pb";
import { EmbeddingJobState, EmbeddingProvider, EmbeddingState } from "@promptcraft/proto/promptcraft/search/v1/resources_pb";
import { SearchService } from "@promptcraft/proto/promptcraft/search/v1/search_service_pb";
import { failure, ok, PROTOCOLS, SearchHarness } from "./search-e2e-helpers.js";

/** The embedding pipeline's RPCs over gRPC and Connect: status, stats, reindex jobs, models. */

const h = new SearchHarness();
beforeAll(() => h.start());
afterAll(() => h.close());

const S = SearchService.method;

for (const protocol of PROTOCOLS) {
  describe(`embedding pipeline over ${protocol}`, () => {
    test("ListEmbeddingModels: the built-in local model, default", async () => {
      const t = await h.tenantWith(["viewer"]);
      const res = ok(await h.searchCall(protocol, S.listEmbeddingModels, {}, t.users[0]!.token));
      assert.equal(res.models[0]!.name, "local-hash-384");
      assert.equal(res.models[0]!.provider, EmbeddingProvider.LOCAL);
      assert.equal(res.models[0]!.dimensions, 384);
      assert.equal(res.models[0]!.usedByDefault, true);
      assert.match(res.models[0]!.description, /lexical/);
    });

    test("GetEmbeddingStatus and GetEmbeddingStats follow the pipeline", async () => {
      const t = await h.tenantWith(["admin"]);
      const admin = t.users[0]!;
      const a = await h.createEntity(admin, { title: "status one" });
      const b = await h.createEntity(admin, { title: "status two", type: EntityType.TEMPLATE });
      await h.waitEmbedded(admin, [a, b]);
      const status = ok(await h.searchCall(protocol, S.getEmbeddingStatus, { entityId: a }, admin.token));
      assert.equal(status.entityId, a);
      assert.equal(status.version, 1);
      assert.deepEqual(status.missingModels, []);
      const e = status.embeddings[0]!;
      assert.deepEqual([e.model, e.dimensions, e.state, e.attempts, e.lastError], ["local-hash-384", 384, EmbeddingState.COMPLETED, 1, ""]);
      assert.match(e.contentHash, /^[0-9a-f]{64}$/);
      assert.ok(e.completeTime);
      assert.deepEqual(failure(await h.searchCall(protocol, S.getEmbeddingStatus, { entityId: a, version: 7 }, admin.token)), { code: "NOT_FOUND", reason: "RESOURCE_NOT_FOUND" });
      assert.deepEqual(failure(await h.searchCall(protocol, S.getEmbeddingStatus, { entityId: randomUUID() }, admin.token)), { code: "NOT_FOUND", reason: "RESOURCE_NOT_FOUND" });

      const stats = ok(await h.searchCall(protocol, S.getEmbeddingStats, {}, admin.token));
      assert.deepEqual(
        stats.models.map((m) => [m.model, m.completedCount, m.pendingCount, m.failedCount, m.missingCount]),
        [["local-hash-384", 2n, 0n, 0n, 0n]],
      );
    });

    test("ReindexEntities: a job with progress, idempotent by request id; GetEmbeddingJob, ListEmbeddingJobs, CancelEmbeddingJob; who may", async () => {
      const t = await h.tenantWith(["admin", "editor", "viewer"]);
      const [admin, editor, viewer] = t.users;
      const ids = [await h.createEntity(editor!, { title: "reindex a" }), await h.createEntity(editor!, { title: "reindex b", type: EntityType.TEMPLATE })];
      await h.waitEmbedded(editor!, ids);

      const requestId = randomUUID();
      const job = ok(await h.searchCall(protocol, S.reindexEntities, { requestId }, admin!.token));
      assert.equal(job.model, "local-hash-384");
      assert.equal(job.totalCount, 2);
      assert.equal(job.creatorId, admin!.id);
      assert.equal(job.tenantId, t.tenantId);
      const again = ok(await h.searchCall(protocol, S.reindexEntities, { requestId }, admin!.token));
      assert.equal(again.id, job.id, "a retry returns the same job");
      let done = job;
      for (let i = 0; i < 600 && done.state !== EmbeddingJobState.SUCCEEDED; i++) {
        await sleep(50);
        done = ok(await h.searchCall(protocol, S.getEmbeddingJob, { jobId: job.id }, admin!.token));
      }
      assert.equal(done.state, EmbeddingJobState.SUCCEEDED);
      assert.deepEqual([done.completedCount, done.skippedCount, done.failedCount], [0, 2, 0], "unchanged text: skipped");
      assert.ok(done.startTime && done.endTime);

      const forced = ok(await h.searchCall(protocol, S.reindexEntities, { entityIds: [ids[0]!], force: true }, editor!.token));
      assert.equal(forced.totalCount, 1, "an editor may reindex what they may edit");
      const byType = ok(await h.searchCall(protocol, S.reindexEntities, { types: [EntityType.TEMPLATE] }, admin!.token));
      assert.equal(byType.totalCount, 1);

      const list = ok(await h.searchCall(protocol, S.listEmbeddingJobs, { pageSize: 2 }, admin!.token));
      assert.deepEqual(list.jobs.map((j) => j.id), [byType.id, forced.id], "newest first");
      const rest = ok(await h.searchCall(protocol, S.listEmbeddingJobs, { pageSize: 2, pageToken: list.nextPageToken }, admin!.token));
      assert.deepEqual(rest.jobs.map((j) => j.id), [job.id]);
      const succeeded = ok(await h.searchCall(protocol, S.listEmbeddingJobs, { states: [EmbeddingJobState.SUCCEEDED] }, admin!.token));
      assert.ok(succeeded.jobs.every((j) => j.state === EmbeddingJobState.SUCCEEDED));

      assert.deepEqual(failure(await h.searchCall(protocol, S.cancelEmbeddingJob, { jobId: job.id }, admin!.token)), {
        code: "FAILED_PRECONDITION",
        reason: "JOB_ALREADY_FINISHED",
      });
      assert.deepEqual(failure(await h.searchCall(protocol, S.getEmbeddingJob, { jobId: randomUUID() }, admin!.token)), { code: "NOT_FOUND", reason: "RESOURCE_NOT_FOUND" });

      // Viewers may not reindex everything, nor what they cannot edit.
      assert.deepEqual(failure(await h.searchCall(protocol, S.reindexEntities, {}, viewer!.token)), { code: "PERMISSION_DENIED", reason: "PERMISSION_INSUFFICIENT" });
      assert.deepEqual(failure(await h.searchCall(protocol, S.reindexEntities, { entityIds: [ids[0]!] }, viewer!.token)), {
        code: "PERMISSION_DENIED",
        reason: "PERMISSION_INSUFFICIENT",
      });
      assert.deepEqual(failure(await h.searchCall(protocol, S.reindexEntities, { entityIds: [randomUUID()] }, admin!.token)), { code: "NOT_FOUND", reason: "RESOURCE_NOT_FOUND" });
      assert.deepEqual(failure(await h.searchCall(protocol, S.reindexEntities, { model: "nope" }, admin!.token)), {
        code: "INVALID_ARGUMENT",
        reason: "EMBEDDING_MODEL_UNKNOWN",
      });
    });

    test("CancelEmbeddingJob: a queued job is cancelled (idempotently); only its creator or an admin", async () => {
      const t = await h.tenantWith(["admin", "editor"]);
      const [admin, editor] = t.users;
      const id = await h.createEntity(editor!, { title: "cancel me" });
      await h.waitEmbedded(editor!, [id]);
      // An item of the entity already queued but not due for an hour: the reindex takes it over
      // (keeping its due time), so the job stays queued until the cancel — no race with the worker.
      await h.db.raw(
        "insert into embedding_job (tenant_id, entity_id, version, model, run_after) values (?, ?, 1, 'local-hash-384', now() + interval '1 hour')",
        [t.tenantId, id],
      );
      const job = ok(await h.searchCall(protocol, S.reindexEntities, { entityIds: [id], force: true }, editor!.token));
      assert.equal(job.state, EmbeddingJobState.QUEUED);
      assert.equal(job.totalCount, 1);
      const other = (await h.tenantWith(["editor"])).users[0]!;
      assert.deepEqual(failure(await h.searchCall(protocol, S.cancelEmbeddingJob, { jobId: job.id }, other.token)), { code: "NOT_FOUND", reason: "RESOURCE_NOT_FOUND" });
      const cancelled = ok(await h.searchCall(protocol, S.cancelEmbeddingJob, { jobId: job.id }, admin!.token));
      assert.equal(cancelled.state, EmbeddingJobState.CANCELLED);
      assert.ok(cancelled.endTime);
      const again = ok(await h.searchCall(protocol, S.cancelEmbeddingJob, { jobId: job.id }, editor!.token));
      assert.equal(again.state, EmbeddingJobState.CANCELLED);
      const { rows } = await h.db.raw<{ rows: unknown[] }>("select 1 from embedding_job where tenant_id = ? and reindex_id = ?", [t.tenantId, job.id]);
      assert.deepEqual(rows, [], "its items left the queue");
    });
  });
}
