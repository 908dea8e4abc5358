import { selectRows, type Knex, type Reader } from "@promptcraft/db";
import type { ItemOutcome } from "./queue.js";

/** A reindex request (the contract's EmbeddingJob) as stored. */
export interface ReindexRow {
  tenant_id: string;
  id: string;
  model: string;
  state: ReindexState;
  force: boolean;
  total_count: number;
  completed_count: number;
  skipped_count: number;
  failed_count: number;
  error: string | null;
  creator: string;
  created_at: Date;
  started_at: Date | null;
  ended_at: Date | null;
}

export type ReindexState = "queued" | "running" | "succeeded" | "failed" | "cancelled";

const COLUMNS = `tenant_id, id, model, state, force, total_count, completed_count, skipped_count, failed_count, error, creator,
  created_at, started_at, ended_at`;

/** The reindex created with `requestId` (AIP-155 retries return it). */
export async function findReindexByRequestId(trx: Reader, tenantId: string, requestId: string): Promise<ReindexRow | undefined> {
  return (await selectRows<ReindexRow>(trx, `select ${COLUMNS} from embedding_reindex where tenant_id = ? and request_id = ?`, [tenantId, requestId]))[0];
}

export async function findReindex(trx: Reader, tenantId: string, id: string): Promise<ReindexRow | undefined> {
  return (await selectRows<ReindexRow>(trx, `select ${COLUMNS} from embedding_reindex where tenant_id = ? and id = ?`, [tenantId, id]))[0];
}

/** What to reindex. */
export interface ReindexTargets {
  model: string;
  force: boolean;
  failedOnly: boolean;
  /** Named entities (already checked by the caller), or null for every live entity. */
  entityIds: string[] | null;
  /** Entity types (only when entityIds is null); empty = all. */
  types: string[];
  creator: string;
  requestId: string | null;
}

/**
 * Creates the reindex and queues its items: the current version of every targeted live entity for
 * the model (with `failedOnly`, only those whose embedding failed). An item already queued (by the
 * event log or an earlier reindex) is taken over: it now counts for this reindex and is forced if
 * this one is. A reindex with nothing to do is finished at once.
 */
export async function createReindex(trx: Knex.Transaction, tenantId: string, t: ReindexTargets): Promise<ReindexRow> {
  const { rows } = await trx.raw<{ rows: { id: string }[] }>(
    "insert into embedding_reindex (tenant_id, model, force, failed_only, creator, request_id) values (?, ?, ?, ?, ?, ?) returning id",
    [tenantId, t.model, t.force, t.failedOnly, t.creator, t.requestId],
  );
  const id = rows[0]!.id;
  const { rows: queued } = await trx.raw<{ rows: { n: number }[] }>(
    `with targets as (
       select v.tenant_id, v.entity_id, v.version
       from entity_version v
       join entity e on e.tenant_id = v.tenant_id and e.id = v.entity_id and e.deleted_at is null
       where v.tenant_id = ? and v.valid_to is null
         and (?::uuid[] is null or v.entity_id = any(?::uuid[]))
         and (cardinality(?::text[]) = 0 or e.entity_type = any(?::text[]))
         and (not ?::boolean or exists (select 1 from embedding em
                                       where em.tenant_id = v.tenant_id and em.entity_id = v.entity_id
                                         and em.version = v.version and em.model = ? and em.status = 'failed'))
     ), queued as (
       insert into embedding_job (tenant_id, entity_id, version, model, force, reindex_id)
       select tenant_id, entity_id, version, ?, ?, ? from targets
       on conflict on constraint embedding_job_target_key do update
         set reindex_id = excluded.reindex_id, force = embedding_job.force or excluded.force
       returning 1
     )
     select count(*)::int as n from queued`,
    [tenantId, t.entityIds, t.entityIds, t.types, t.types, t.failedOnly, t.model, t.model, t.force, id],
  );
  const total = queued[0]!.n;
  const done = await trx.raw<{ rows: ReindexRow[] }>(
    `update embedding_reindex set total_count = ?,
       state = case when ? = 0 then 'succeeded' else state end,
       started_at = case when ? = 0 then now() end,
       ended_at = case when ? = 0 then now() end
     where tenant_id = ? and id = ? returning ${COLUMNS}`,
    [total, total, total, total, tenantId, id],
  );
  return done.rows[0]!;
}

/** Counts per reindex of the items a worker finished. */
export type OutcomeCounts = Record<ItemOutcome, number>;

/**
 * Adds finished items to a reindex's counters; it is running while items of it remain and
 * succeeded when none does (a cancelled one stays cancelled).
 */
export async function recordOutcomes(trx: Knex.Transaction, tenantId: string, reindexId: string, counts: OutcomeCounts): Promise<void> {
  await trx.raw(
    `update embedding_reindex r set
       completed_count = r.completed_count + ?, skipped_count = r.skipped_count + ?, failed_count = r.failed_count + ?,
       started_at = coalesce(r.started_at, now()),
       state = case when r.state not in ('queued', 'running') then r.state when rest.n > 0 then 'running' else 'succeeded' end,
       ended_at = case when r.state not in ('queued', 'running') then r.ended_at when rest.n > 0 then null else now() end
     from (select count(*) as n from embedding_job where tenant_id = ? and reindex_id = ?) rest
     where r.tenant_id = ? and r.id = ?`,
    [counts.completed, counts.skipped, counts.failed, tenantId, reindexId, tenantId, reindexId],
  );
}

/** Page of a tenant's reindexes, newest first, after the keyset `after`. */
export async function listReindexes(
  trx: Reader,
  tenantId: string,
  q: { states: ReindexState[]; after: { createdAt: string; id: string } | null; limit: number },
): Promise<ReindexRow[]> {
  return selectRows<ReindexRow>(
    trx,
    `select ${COLUMNS} from embedding_reindex
     where tenant_id = ? and (cardinality(?::text[]) = 0 or state = any(?::text[]))
       and (?::timestamptz is null or (created_at, id) < (?::timestamptz, ?::uuid))
     order by created_at desc, id desc limit ?`,
    [tenantId, q.states, q.states, q.after?.createdAt ?? null, q.after?.createdAt ?? null, q.after?.id ?? null, q.limit],
  );
}

/**
 * Cancels a queued or running reindex: its items not leased right now leave the queue (with the
 * pending embedding rows they had made); leased ones finish and count. Returns the row after.
 */
export async function cancelReindex(trx: Knex.Transaction, tenantId: string, id: string): Promise<ReindexRow> {
  await trx.raw(
    `with dropped as (
       delete from embedding_job where tenant_id = ? and reindex_id = ? and (locked_until is null or locked_until < now())
       returning entity_id, version, model
     )
     delete from embedding em using dropped d
     where em.tenant_id = ? and em.entity_id = d.entity_id and em.version = d.version and em.model = d.model and em.status = 'pending'`,
    [tenantId, id, tenantId],
  );
  const { rows } = await trx.raw<{ rows: ReindexRow[] }>(
    `update embedding_reindex set state = 'cancelled', ended_at = now() where tenant_id = ? and id = ? returning ${COLUMNS}`,
    [tenantId, id],
  );
  return rows[0]!;
}

/** Locks a reindex row for a state change. */
export async function lockReindex(trx: Knex.Transaction, tenantId: string, id: string): Promise<ReindexRow | undefined> {
  const { rows } = await trx.raw<{ rows: ReindexRow[] }>(`select ${COLUMNS} from embedding_reindex where tenant_id = ? and id = ? for update`, [tenantId, id]);
  return rows[0];
}
