import type { Migration } from "@promptcraft/db";

/**
 * The embedding pipeline's second half (issue 13).
 *
 * - **embedding_reindex**: the contract's EmbeddingJob — one ReindexEntities request with its
 *   progress counters. Its work items are `embedding_job` rows (one per entity version and model)
 *   carrying its id; the worker adds each finished item to the counters and closes the reindex when
 *   none is left. (The queue table keeps its name: `embedding_job` is one item of work, as in the
 *   seed; the contract's "job" is the request.)
 * - embedding_job gets `force` (embed even when the text's hash is already embedded) and
 *   `reindex_id` (whose counters the item feeds; null for items the event log created).
 * - `embedding_content_hash_idx` serves the skip: a worker looks for a completed embedding of the
 *   same model and text hash in the tenant and copies its vector instead of calling the provider.
 * - claim_embedding_jobs(worker, models, limit, lease): the claim of the first migration, limited to
 *   the models the claiming replica serves — a replica never takes an item it cannot embed, and
 *   models stay isolated (one model's backlog or failures never take another's claims).
 */
export const createEmbeddingReindex: Migration = {
  name: "20261207050100_create_embedding_reindex",
  async up(knex) {
    await knex.raw(`
      create table embedding_reindex (
        tenant_id uuid not null,
        id uuid not null default gen_random_uuid(),
        model text not null,
        state text not null default 'queued',
        force boolean not null default false,
        failed_only boolean not null default false,
        total_count integer not null default 0,
        completed_count integer not null default 0,
        skipped_count integer not null default 0,
        failed_count integer not null default 0,
        error text,
        creator text not null,
        request_id uuid,
        created_at timestamptz not null default now(),
        started_at timestamptz,
        ended_at timestamptz,
        constraint embedding_reindex_pkey primary key (tenant_id, id),
        constraint embedding_reindex_state_check check (state in ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
        constraint embedding_reindex_model_check check (model ~ '^[A-Za-z0-9_.:/@-]{1,200}$'),
        constraint embedding_reindex_counts_check check (
          least(total_count, completed_count, skipped_count, failed_count) >= 0),
        constraint embedding_reindex_error_check check (error is null or char_length(error) <= 4000),
        constraint embedding_reindex_creator_check check (char_length(creator) <= 100),
        constraint embedding_reindex_ended_check check ((state in ('succeeded', 'failed', 'cancelled')) = (ended_at is not null))
      );
      comment on column embedding_reindex.creator is 'Who asked: a user UUID or api_key:<uuid>.';
      create unique index embedding_reindex_request_id_key on embedding_reindex (tenant_id, request_id)
        where request_id is not null;
      create index embedding_reindex_list_idx on embedding_reindex (tenant_id, created_at desc, id);

      alter table embedding_job add column force boolean not null default false;
      alter table embedding_job add column reindex_id uuid;
      alter table embedding_job add constraint embedding_job_reindex_fkey
        foreign key (tenant_id, reindex_id) references embedding_reindex (tenant_id, id);
      create index embedding_job_reindex_idx on embedding_job (tenant_id, reindex_id) where reindex_id is not null;

      create index embedding_content_hash_idx on embedding (tenant_id, model, content_hash) where status = 'completed';

      alter table embedding_reindex enable row level security;
      alter table embedding_reindex force row level security;
      create policy embedding_reindex_tenant_isolation on embedding_reindex
        using (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid)
        with check (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid);
      grant select, insert, update on embedding_reindex to promptcraft_search;

      create function claim_embedding_jobs(p_worker text, p_models text[], p_limit integer, p_lease interval)
      returns table (tenant_id uuid, id uuid, entity_id uuid, version integer, model text, attempts integer)
      language sql volatile security definer
      set search_path = pg_catalog, public
      as $fn$
        with due as (
          select j.tenant_id, j.id
          from public.embedding_job j
          where j.run_after <= now() and (j.locked_until is null or j.locked_until < now()) and j.model = any(p_models)
          order by j.run_after
          limit greatest(1, least(p_limit, 1000))
          for update skip locked
        )
        update public.embedding_job j
        set locked_by = p_worker, locked_until = now() + p_lease, attempts = j.attempts + 1
        from due
        where j.tenant_id = due.tenant_id and j.id = due.id
        returning j.tenant_id, j.id, j.entity_id, j.version, j.model, j.attempts
      $fn$;
      alter function claim_embedding_jobs(text, text[], integer, interval) owner to promptcraft_system;
      comment on function claim_embedding_jobs(text, text[], integer, interval) is
        'Leases up to p_limit due embedding jobs of the given models, of any tenant, to a worker; process each inside withTenant(tenant_id).';
      revoke execute on function claim_embedding_jobs(text, text[], integer, interval) from public;
      grant execute on function claim_embedding_jobs(text, text[], integer, interval) to promptcraft_search;
    `);
  },
  async down(knex) {
    await knex.raw(`
      drop function if exists claim_embedding_jobs(text, text[], integer, interval);
      drop index if exists embedding_content_hash_idx;
      alter table embedding_job drop column if exists reindex_id, drop column if exists force;
      drop table if exists embedding_reindex;
    `);
  },
};
