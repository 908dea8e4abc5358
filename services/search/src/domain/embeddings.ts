import { sqlTime, tenantReads, withTenant, type Knex } from "@promptcraft/db";
import {
  accessPrincipalOf,
  CURSOR_TIMESTAMP,
  CURSOR_UUID,
  decodePageCursor,
  FailedPreconditionError,
  NotFoundError,
  pageOf,
  PermissionDeniedError,
  requireCallerRole,
  roleAtLeast,
} from "@promptcraft/platform";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import type { ModelInfo, ModelRegistry } from "../providers/registry.js";
import * as reindexStore from "../store/reindex.js";
import * as status from "../store/status.js";
import { entityNotFound, callerName, scopeOf, type Caller } from "./caller.js";
import { modelOf } from "./search.js";

export type ReindexRow = reindexStore.ReindexRow;
export type ReindexState = reindexStore.ReindexState;
export type EmbeddingStatusRow = status.EmbeddingStatusRow;

/** GetEmbeddingStatus: the embedding rows of the entity's current (or given) version per model, and the configured models without one. */
export async function getEmbeddingStatus(
  db: Knex,
  registry: ModelRegistry,
  caller: Caller,
  input: { entityId: string; version: number | null; model: string },
): Promise<{ version: number; embeddings: EmbeddingStatusRow[]; missingModels: string[] }> {
  const models = input.model === "" ? registry.names : [modelOf(registry, input.model).provider.model];
  const reads = tenantReads(db, scopeOf(caller));
  const access = await status.findVersionAccess(reads, caller.tenantId, accessPrincipalOf(caller), input.entityId, input.version);
  if (!access || access.permission < 1) throw entityNotFound();
  if (access.version === null) throw new NotFoundError(`the entity has no version ${input.version}`, { metadata: { resource_type: "entity_version" } });
  const rows = (await status.embeddingStatus(reads, caller.tenantId, input.entityId, access.version)).filter((r) => models.includes(r.model));
  return { version: access.version, embeddings: rows, missingModels: models.filter((m) => !rows.some((r) => r.model === m)) };
}

/** GetEmbeddingStats: per model, the tenant's current versions by embedding state. */
export async function getEmbeddingStats(db: Knex, registry: ModelRegistry, caller: Caller, model: string): Promise<{ model: string; counts: status.StateCounts }[]> {
  const models = model === "" ? registry.names : [modelOf(registry, model).provider.model];
  const reads = tenantReads(db, scopeOf(caller));
  return Promise.all(models.map(async (m) => ({ model: m, counts: await status.stateCounts(reads, caller.tenantId, m) })));
}

export interface ReindexInput {
  entityIds: string[];
  types: string[];
  model: string;
  force: boolean;
  failedOnly: boolean;
  requestId: string;
}

/**
 * ReindexEntities: queues the current versions of the named entities (PERMISSION_EDIT on each;
 * NOT_FOUND for one the caller cannot see) or of every live entity (admin role), and returns the
 * reindex. A retry with the same request id returns the first one.
 */
export async function reindexEntities(db: Knex, registry: ModelRegistry, caller: Caller, input: ReindexInput): Promise<ReindexRow> {
  const info = modelOf(registry, input.model);
  if (input.entityIds.length === 0) requireCallerRole(caller, "admin");
  const scope = scopeOf(caller);
  const principal = accessPrincipalOf(caller);
  return withTenant(db, scope, async (trx) => {
    if (input.requestId !== "") {
      const earlier = await reindexStore.findReindexByRequestId(trx, caller.tenantId, input.requestId);
      if (earlier) return earlier;
    }
    for (const entityId of input.entityIds) {
      const access = await status.findVersionAccess(trx, caller.tenantId, principal, entityId, null);
      if (!access || access.permission < 1) throw entityNotFound();
      if (access.permission < 2) {
        throw new PermissionDeniedError("reindexing an entity needs edit permission on it", {
          reason: ErrorReason.PERMISSION_INSUFFICIENT,
          metadata: { required_permission: "edit", entity_id: entityId },
        });
      }
    }
    return reindexStore.createReindex(trx, caller.tenantId, {
      model: info.provider.model,
      force: input.force,
      failedOnly: input.failedOnly,
      entityIds: input.entityIds.length > 0 ? input.entityIds : null,
      types: input.entityIds.length > 0 ? [] : input.types,
      creator: callerName(caller),
      requestId: input.requestId === "" ? null : input.requestId,
    });
  });
}

function reindexNotFound(): NotFoundError {
  return new NotFoundError("embedding job not found", { metadata: { resource_type: "embedding_job" } });
}

/** GetEmbeddingJob. */
export async function getReindex(db: Knex, caller: Caller, id: string): Promise<ReindexRow> {
  const row = await reindexStore.findReindex(tenantReads(db, scopeOf(caller)), caller.tenantId, id);
  if (!row) throw reindexNotFound();
  return row;
}

/** ListEmbeddingJobs: newest first, keyset paged. */
export async function listReindexes(db: Knex, caller: Caller, input: { states: ReindexState[]; pageSize: number; pageToken: string }): Promise<{ rows: ReindexRow[]; nextPageToken: string }> {
  const params = { states: input.states };
  const cursor = decodePageCursor(input.pageToken, params, { t: CURSOR_TIMESTAMP, id: CURSOR_UUID });
  const rows = await reindexStore.listReindexes(tenantReads(db, scopeOf(caller)), caller.tenantId, {
    states: input.states,
    after: cursor ? { createdAt: cursor.t, id: cursor.id } : null,
    limit: input.pageSize + 1,
  });
  const { page, nextPageToken } = pageOf(rows, input.pageSize, params, (last) => ({ t: sqlTime(last.created_at), id: last.id }));
  return { rows: page, nextPageToken };
}

/**
 * CancelEmbeddingJob: the creator or an admin; idempotent for a cancelled job, FAILED_PRECONDITION
 * (JOB_ALREADY_FINISHED) for one that succeeded or failed.
 */
export async function cancelReindex(db: Knex, caller: Caller, id: string): Promise<ReindexRow> {
  return withTenant(db, scopeOf(caller), async (trx) => {
    const row = await reindexStore.lockReindex(trx, caller.tenantId, id);
    if (!row) throw reindexNotFound();
    if (row.creator !== callerName(caller) && !roleAtLeast(caller.role, "admin")) {
      throw new PermissionDeniedError("only the job's creator or an admin can cancel it", { reason: ErrorReason.PERMISSION_INSUFFICIENT, metadata: { required_role: "admin" } });
    }
    if (row.state === "cancelled") return row;
    if (row.state === "succeeded" || row.state === "failed") {
      throw new FailedPreconditionError(`the job already ${row.state}`, { reason: ErrorReason.JOB_ALREADY_FINISHED, metadata: { state: row.state } });
    }
    return reindexStore.cancelReindex(trx, caller.tenantId, id);
  });
}

/** ListEmbeddingModels: the configured models, default first. */
export function listModels(registry: ModelRegistry): { info: ModelInfo; isDefault: boolean }[] {
  return registry.models.map((info, i) => ({ info, isDefault: i === 0 }));
}
