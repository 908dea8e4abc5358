import { selectRows, type Knex, type Reader } from "@promptcraft/db";

/*
 * The embedding queue (`embedding_job`: one item per entity version and model) and the embeddings
 * it fills. Every statement runs inside withTenant (row-level security) and names the tenant;
 * only `claimItems` spans tenants, through claim_embedding_jobs (SECURITY DEFINER).
 */

/**
 * Queues the current versions of live entities among `entityIds` for every model in `models`,
 * unless already embedded, and drops queued items of their older versions (a newer version
 * supersedes them: stale text is never embedded). Idempotent: the log delivers at least once.
 */
export async function enqueueCurrentVersions(trx: Knex.Transaction, tenantId: string, entityIds: string[], models: readonly string[]): Promise<number> {
  const { rows } = await trx.raw<{ rows: { queued: number }[] }>(
    `with current_versions as (
       select v.tenant_id, v.entity_id, v.version
       from entity_version v
       join entity e on e.tenant_id = v.tenant_id and e.id = v.entity_id and e.deleted_at is null
       where v.tenant_id = ? and v.entity_id = any(?::uuid[]) and v.valid_to is null
     ), superseded as (
       delete from embedding_job j using current_versions c
       where j.tenant_id = c.tenant_id and j.entity_id = c.entity_id and j.version < c.version
     ), queued as (
       insert into embedding_job (tenant_id, entity_id, version, model)
       select c.tenant_id, c.entity_id, c.version, m.model
       from current_versions c cross join unnest(?::text[]) as m(model)
       where not exists (select 1 from embedding em
                         where em.tenant_id = c.tenant_id and em.entity_id = c.entity_id and em.version = c.version
                           and em.model = m.model and em.status = 'completed')
       on conflict on constraint embedding_job_target_key do nothing
       returning 1
     )
     select count(*)::int as queued from queued`,
    [tenantId, entityIds, [...models]],
  );
  return rows[0]!.queued;
}

/** Per tenant and model, how many current versions of live entities the model has never seen. */
export interface MissingEmbeddings {
  tenant_id: string;
  model: string;
  missing: number;
}

/**
 * The tenants where a model of `models` has current versions with no embedding row and nothing
 * queued (a model new to them), through missing_embeddings (SECURITY DEFINER: the scan spans
 * tenants, and returns only counts). Run as the service role.
 */
export async function findMissingEmbeddings(trx: Knex.Transaction, models: readonly string[]): Promise<MissingEmbeddings[]> {
  const { rows } = await trx.raw<{ rows: MissingEmbeddings[] }>("select tenant_id, model, missing from missing_embeddings(?::text[])", [[...models]]);
  return rows;
}

/**
 * Queues, for every model in `models`, the current versions of the tenant's live entities that have
 * no embedding row of that model (never embedded, never tried; a failed one stays failed until a
 * reindex asks). Idempotent across replicas and restarts: the queue's unique key drops repeats.
 */
export async function enqueueMissingVersions(trx: Knex.Transaction, tenantId: string, models: readonly string[]): Promise<number> {
  const { rows } = await trx.raw<{ rows: { queued: number }[] }>(
    `with queued as (
       insert into embedding_job (tenant_id, entity_id, version, model)
       select v.tenant_id, v.entity_id, v.version, m.model
       from entity_version v
       join entity e on e.tenant_id = v.tenant_id and e.id = v.entity_id and e.deleted_at is null
       cross join unnest(?::text[]) as m(model)
       where v.tenant_id = ? and v.valid_to is null
         and not exists (select 1 from embedding em
                         where em.tenant_id = v.tenant_id and em.entity_id = v.entity_id
                           and em.version = v.version and em.model = m.model)
       on conflict on constraint embedding_job_target_key do nothing
       returning 1
     )
     select count(*)::int as queued from queued`,
    [[...models], tenantId],
  );
  return rows[0]!.queued;
}

/** Drops the queued items of entities (deleted: nothing of theirs is searchable until undeleted). */
export async function dropQueuedItems(trx: Knex.Transaction, tenantId: string, entityIds: string[]): Promise<void> {
  await trx.raw("delete from embedding_job where tenant_id = ? and entity_id = any(?::uuid[])", [tenantId, entityIds]);
}

/** One leased queue item, as claim_embedding_jobs returns it. */
export interface ClaimedItem {
  tenant_id: string;
  id: string;
  entity_id: string;
  version: number;
  model: string;
  attempts: number;
}

/**
 * Leases up to `limit` due items of `models` (those this worker serves), of any tenant, to `worker`
 * (FOR UPDATE SKIP LOCKED: replicas never share one). Run as the service role.
 */
export async function claimItems(trx: Knex.Transaction, worker: string, models: readonly string[], limit: number, leaseMs: number): Promise<ClaimedItem[]> {
  const { rows } = await trx.raw<{ rows: ClaimedItem[] }>(
    "select tenant_id, id, entity_id, version, model, attempts from claim_embedding_jobs(?, ?::text[], ?, ? * interval '1 millisecond')",
    [worker, [...models], limit, leaseMs],
  );
  return rows;
}

/** A claimed item with what embedding it needs: its text fields, and whether it is still current. */
export interface ItemToEmbed {
  id: string;
  entity_id: string;
  version: number;
  model: string;
  attempts: number;
  force: boolean;
  reindex_id: string | null;
  /** False when the version was superseded, the entity deleted or purged since it was queued. */
  current: boolean;
  title: string | null;
  description: string | null;
  tags: string[] | null;
  content: Record<string, unknown> | null;
}

/** The items `ids` still leased by `worker`, with their version's text. */
export async function itemsToEmbed(trx: Reader, tenantId: string, ids: string[], worker: string): Promise<ItemToEmbed[]> {
  return selectRows<ItemToEmbed>(
    trx,
    `select j.id, j.entity_id, j.version, j.model, j.attempts, j.force, j.reindex_id,
            coalesce(v.valid_to is null and e.deleted_at is null, false) as current,
            v.title, v.description, v.tags, v.content
     from embedding_job j
     left join entity_version v on v.tenant_id = j.tenant_id and v.entity_id = j.entity_id and v.version = j.version
     left join entity e on e.tenant_id = j.tenant_id and e.id = j.entity_id
     where j.tenant_id = ? and j.id = any(?::uuid[]) and j.locked_by = ?`,
    [tenantId, ids, worker],
  );
}

/** What finishing an item leaves: it is gone from the queue; for a reindex, which counter it adds to. */
export type ItemOutcome = "completed" | "skipped" | "failed";

/** A vector to store for an item (pgvector text, from the `pgvector` package). */
export interface VectorToStore {
  item: ItemToEmbed;
  contentHash: string;
  vectorSql: string;
}

/**
 * Stores the vectors of a batch for their versions (those still current: a version superseded
 * meanwhile is not stored) and removes the items, in three statements whatever the batch size.
 * The embeddings of the entities' older versions for the model are removed: only current versions
 * are searched, and fewer dead rows in the HNSW graph mean fewer tuples an iterative scan walks past.
 */
export async function storeVectors(trx: Knex.Transaction, tenantId: string, rows: VectorToStore[]): Promise<void> {
  if (rows.length === 0) return;
  await trx.raw(
    `insert into embedding (tenant_id, entity_id, version, model, vector, status, attempts, last_error, content_hash, embedded_at)
     select ?, u.entity_id, u.version, u.model, u.vector::vector, 'completed', u.attempts, null, u.content_hash, now()
     from unnest(?::uuid[], ?::int[], ?::text[], ?::text[], ?::int[], ?::text[]) as u(entity_id, version, model, vector, attempts, content_hash)
     -- One probe per row (as in copyEmbeddedVectors): a semi-join planned on a growing tenant's stale statistics could read all its versions.
     cross join lateral (select 1 from entity_version v
                         where v.tenant_id = ? and v.entity_id = u.entity_id and v.version = u.version and v.valid_to is null limit 1) current_version
     on conflict on constraint embedding_pkey do update
       set vector = excluded.vector, status = 'completed', attempts = excluded.attempts, last_error = null,
           content_hash = excluded.content_hash, updated_at = now(), embedded_at = now()`,
    [
      tenantId,
      rows.map((r) => r.item.entity_id),
      rows.map((r) => r.item.version),
      rows.map((r) => r.item.model),
      rows.map((r) => r.vectorSql),
      rows.map((r) => r.item.attempts),
      rows.map((r) => r.contentHash),
      tenantId,
    ],
  );
  await finishItems(trx, tenantId, rows.map((r) => r.item));
}

/**
 * Copies, for each item not forced, the vector of a completed embedding of the same model and text
 * hash in the tenant (the text is unchanged: no provider call), and finishes those items; returns
 * the ids of the items it copied for.
 */
export async function copyEmbeddedVectors(trx: Knex.Transaction, tenantId: string, rows: { item: ItemToEmbed; contentHash: string }[]): Promise<Set<string>> {
  if (rows.length === 0) return new Set();
  const { rows: copied } = await trx.raw<{ rows: { id: string }[] }>(
    `with u as (
       select * from unnest(?::uuid[], ?::uuid[], ?::int[], ?::text[], ?::int[], ?::text[]) as u(id, entity_id, version, model, attempts, content_hash)
     ), src as (
       -- One index probe per item (embedding_content_hash_idx), whatever the statistics say: while a
       -- tenant's first embeddings are written they are stale, and a join planned on them read the
       -- tenant's whole embedding heap for every batch (172 ms a batch at 86,000 rows).
       select u.*, s.vector
       from u cross join lateral (
         select s.vector from embedding s
         where s.tenant_id = ? and s.model = u.model and s.content_hash = u.content_hash and s.status = 'completed'
         limit 1
       ) s
     ), stored as (
       insert into embedding (tenant_id, entity_id, version, model, vector, status, attempts, last_error, content_hash, embedded_at)
       select ?, src.entity_id, src.version, src.model, src.vector, 'completed', src.attempts, null, src.content_hash, now() from src
       on conflict on constraint embedding_pkey do update
         set vector = excluded.vector, status = 'completed', last_error = null, content_hash = excluded.content_hash,
             updated_at = now(), embedded_at = coalesce(embedding.embedded_at, now())
     )
     select id::text from src`,
    [
      rows.map((r) => r.item.id),
      rows.map((r) => r.item.entity_id),
      rows.map((r) => r.item.version),
      rows.map((r) => r.item.model),
      rows.map((r) => r.item.attempts),
      rows.map((r) => r.contentHash),
      tenantId,
      tenantId,
    ],
  );
  const ids = new Set(copied.map((c) => c.id));
  await finishItems(trx, tenantId, rows.map((r) => r.item).filter((i) => ids.has(i.id)));
  return ids;
}

/** Removes finished items from the queue, and the older versions' embeddings of their entities and models. */
async function finishItems(trx: Knex.Transaction, tenantId: string, items: ItemToEmbed[]): Promise<void> {
  if (items.length === 0) return;
  await trx.raw(
    `delete from embedding e
     using unnest(?::uuid[], ?::text[], ?::int[]) as u(entity_id, model, version)
     where e.tenant_id = ? and e.entity_id = u.entity_id and e.model = u.model and e.version < u.version`,
    [items.map((i) => i.entity_id), items.map((i) => i.model), items.map((i) => i.version), tenantId],
  );
  await deleteItems(trx, tenantId, items.map((i) => i.id));
}

/** Removes items from the queue (done, stale, or given up). */
export async function deleteItems(trx: Knex.Transaction, tenantId: string, ids: string[]): Promise<void> {
  if (ids.length > 0) await trx.raw("delete from embedding_job where tenant_id = ? and id = any(?::uuid[])", [tenantId, ids]);
}

/**
 * A failed attempt that will be retried: the item is released and due again after `delayMs`; the
 * version's embedding row shows it pending with the attempts and the error (GetEmbeddingStatus).
 */
export async function retryLater(trx: Knex.Transaction, tenantId: string, item: ItemToEmbed, contentHash: string, error: string, delayMs: number): Promise<void> {
  await trx.raw(
    `update embedding_job set locked_by = null, locked_until = null, last_error = ?, run_after = now() + ? * interval '1 millisecond'
     where tenant_id = ? and id = ?`,
    [error, delayMs, tenantId, item.id],
  );
  await markEmbedding(trx, tenantId, item, contentHash, "pending", error);
}

/** The last attempt failed too (or the failure is permanent): the item leaves the queue, the embedding is `failed` with the error. */
export async function giveUp(trx: Knex.Transaction, tenantId: string, item: ItemToEmbed, contentHash: string, error: string): Promise<void> {
  await markEmbedding(trx, tenantId, item, contentHash, "failed", error);
  await deleteItems(trx, tenantId, [item.id]);
}

async function markEmbedding(trx: Knex.Transaction, tenantId: string, item: ItemToEmbed, contentHash: string, status: "pending" | "failed", error: string): Promise<void> {
  // A completed vector of this version stays (a forced re-embedding that failed keeps the old one searchable).
  await trx.raw(
    `insert into embedding (tenant_id, entity_id, version, model, status, attempts, last_error, content_hash)
     select ?, ?, ?, ?, ?, ?, ?, ?
     where exists (select 1 from entity_version v where v.tenant_id = ? and v.entity_id = ? and v.version = ?)
     on conflict on constraint embedding_pkey do update
       set status = excluded.status, attempts = excluded.attempts, last_error = excluded.last_error,
           content_hash = excluded.content_hash, updated_at = now()
       where embedding.status <> 'completed'`,
    [tenantId, item.entity_id, item.version, item.model, status, item.attempts, error.slice(0, 4000), contentHash, tenantId, item.entity_id, item.version],
  );
}
