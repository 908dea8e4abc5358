import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Knex } from "@promptcraft/db";
import { callerOf, invertEnumMap, timestampFromDb, type ServiceHandlers } from "@promptcraft/platform";
import {
  EmbeddingJobState,
  EmbeddingProvider,
  EmbeddingState,
  type EmbeddingJobSchema,
  type EmbeddingSchema,
} from "@promptcraft/proto/promptcraft/search/v1/resources_pb";
import type { SearchService } from "@promptcraft/proto/promptcraft/search/v1/search_service_pb";
import * as embeddings from "../domain/embeddings.js";
import type { ModelRegistry } from "../providers/registry.js";
import { typesOf } from "./convert.js";

const JOB_STATE_TO_PROTO: Record<embeddings.ReindexState, EmbeddingJobState> = {
  queued: EmbeddingJobState.QUEUED,
  running: EmbeddingJobState.RUNNING,
  succeeded: EmbeddingJobState.SUCCEEDED,
  failed: EmbeddingJobState.FAILED,
  cancelled: EmbeddingJobState.CANCELLED,
};
const JOB_STATE_FROM_PROTO = invertEnumMap(JOB_STATE_TO_PROTO);
const STATE_TO_PROTO = { pending: EmbeddingState.PENDING, completed: EmbeddingState.COMPLETED, failed: EmbeddingState.FAILED } as const;

function jobToProto(r: embeddings.ReindexRow): MessageInitShape<typeof EmbeddingJobSchema> {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    model: r.model,
    state: JOB_STATE_TO_PROTO[r.state],
    force: r.force,
    totalCount: r.total_count,
    completedCount: r.completed_count,
    skippedCount: r.skipped_count,
    failedCount: r.failed_count,
    error: r.error ?? "",
    creatorId: r.creator,
    createTime: timestampFromDb(r.created_at),
    startTime: r.started_at ? timestampFromDb(r.started_at) : undefined,
    endTime: r.ended_at ? timestampFromDb(r.ended_at) : undefined,
  };
}

/** The embedding pipeline's RPCs: status, stats, reindex jobs, models. */
export function embeddingHandlers(
  db: Knex,
  registry: ModelRegistry,
): Omit<ServiceHandlers<typeof SearchService>, "searchEntities" | "findSimilarEntities" | "findNearDuplicates"> {
  return {
    async getEmbeddingStatus(req, ctx) {
      const entityId = req.entityId.toLowerCase();
      const out = await embeddings.getEmbeddingStatus(db, registry, callerOf(ctx), { entityId, version: req.version ?? null, model: req.model });
      return {
        entityId,
        version: out.version,
        missingModels: out.missingModels,
        embeddings: out.embeddings.map(
          (e): MessageInitShape<typeof EmbeddingSchema> => ({
            entityId,
            version: out.version,
            model: e.model,
            dimensions: e.dimensions ?? registry.get(e.model)?.provider.dimensions ?? 0,
            state: STATE_TO_PROTO[e.status],
            attempts: e.attempts,
            lastError: e.last_error ?? "",
            contentHash: e.content_hash,
            createTime: timestampFromDb(e.created_at),
            updateTime: timestampFromDb(e.updated_at),
            completeTime: e.embedded_at ? timestampFromDb(e.embedded_at) : undefined,
          }),
        ),
      };
    },

    async getEmbeddingStats(req, ctx) {
      const stats = await embeddings.getEmbeddingStats(db, registry, callerOf(ctx), req.model);
      return {
        models: stats.map((s) => ({
          model: s.model,
          pendingCount: BigInt(s.counts.pending),
          completedCount: BigInt(s.counts.completed),
          failedCount: BigInt(s.counts.failed),
          missingCount: BigInt(s.counts.missing),
        })),
      };
    },

    async reindexEntities(req, ctx) {
      const row = await embeddings.reindexEntities(db, registry, callerOf(ctx), {
        entityIds: req.entityIds.map((id) => id.toLowerCase()),
        types: typesOf(req.types),
        model: req.model,
        force: req.force,
        failedOnly: req.failedOnly,
        requestId: req.requestId.toLowerCase(),
      });
      return jobToProto(row);
    },

    async getEmbeddingJob(req, ctx) {
      return jobToProto(await embeddings.getReindex(db, callerOf(ctx), req.jobId.toLowerCase()));
    },

    async listEmbeddingJobs(req, ctx) {
      const out = await embeddings.listReindexes(db, callerOf(ctx), {
        states: req.states.flatMap((s) => JOB_STATE_FROM_PROTO[s] ?? []),
        pageSize: req.pageSize > 0 ? req.pageSize : 50,
        pageToken: req.pageToken,
      });
      return { jobs: out.rows.map(jobToProto), nextPageToken: out.nextPageToken };
    },

    async cancelEmbeddingJob(req, ctx) {
      return jobToProto(await embeddings.cancelReindex(db, callerOf(ctx), req.jobId.toLowerCase()));
    },

    async listEmbeddingModels(_req, ctx) {
      callerOf(ctx);
      return {
        models: embeddings.listModels(registry).map(({ info, isDefault }) => ({
          name: info.provider.model,
          provider: info.kind === "local" ? EmbeddingProvider.LOCAL : EmbeddingProvider.OPENAI_COMPATIBLE,
          dimensions: info.provider.dimensions,
          usedByDefault: isDefault,
          halfPrecision: info.provider.dimensions > 1024,
          description: info.description,
        })),
      };
    },
  };
}
