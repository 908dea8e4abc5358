import type { Migration } from "@promptcraft/db";

/**
 * Search's tables (brief §4.8): embedding (one per entity version and model) and embedding_job (the
 * work queue of the embedding pipeline).
 *
 * `vector` is pgvector's `vector` without a fixed dimension, so any model fits one table;
 * `dimensions` is generated from it. Approximate search uses HNSW (not the seed's IVFFlat with
 * lists = 100, which is wrong for 1M rows) through one partial expression index per supported
 * dimension: `(vector::vector(N))` for N = 384, 768, 1024, and `(vector::halfvec(N))` for 1536 and
 * 3072 (half the memory: 1M x 1536-d float4 vectors = 6 GB, halfvec = 3 GB; HNSW on `vector` is also
 * limited to 2,000 dimensions). A query uses an index when it orders by exactly that expression
 * with the same predicate, which `search_similar_entities` does. Other dimensions work, by exact scan.
 *
 * Rows are created `pending` (no vector) and become `completed` (vector set) or `failed`
 * (last_error, attempts); the CHECK ties vector presence to status. `content_hash` is the hash of the
 * text that was embedded: equal hash = skip re-embedding.
 */
export const createSearchTables: Migration = {
  name: "20261125094000_create_search_tables",
  async up(knex) {
    await knex.raw(`
      create table embedding (
        tenant_id uuid not null,
        entity_id uuid not null,
        version integer not null,
        model text not null,
        vector vector,
        dimensions integer generated always as (vector_dims(vector)) stored,
        status text not null default 'pending',
        attempts integer not null default 0,
        last_error text,
        content_hash text not null,
        created_at timestamptz not null default now(),
        updated_at timestamptz not null default now(),
        embedded_at timestamptz,
        constraint embedding_pkey primary key (tenant_id, entity_id, version, model),
        constraint embedding_version_fkey foreign key (tenant_id, entity_id, version)
          references entity_version (tenant_id, entity_id, version) on delete cascade,
        constraint embedding_model_check check (model ~ '^[A-Za-z0-9_.:/@-]{1,200}$'),
        constraint embedding_status_check check (status in ('pending', 'completed', 'failed')),
        constraint embedding_vector_check check ((status = 'completed') = (vector is not null)),
        constraint embedding_embedded_at_check check ((status = 'completed') = (embedded_at is not null)),
        constraint embedding_attempts_check check (attempts >= 0),
        constraint embedding_last_error_check check (last_error is null or char_length(last_error) <= 4000),
        constraint embedding_content_hash_check check (char_length(content_hash) between 1 and 128)
      );
      create index embedding_status_idx on embedding (tenant_id, status, updated_at) where status <> 'completed';
      create index embedding_hnsw_384_idx on embedding
        using hnsw ((vector::vector(384)) vector_cosine_ops) where dimensions = 384;
      create index embedding_hnsw_768_idx on embedding
        using hnsw ((vector::vector(768)) vector_cosine_ops) where dimensions = 768;
      create index embedding_hnsw_1024_idx on embedding
        using hnsw ((vector::vector(1024)) vector_cosine_ops) where dimensions = 1024;
      create index embedding_hnsw_1536_idx on embedding
        using hnsw ((vector::halfvec(1536)) halfvec_cosine_ops) where dimensions = 1536;
      create index embedding_hnsw_3072_idx on embedding
        using hnsw ((vector::halfvec(3072)) halfvec_cosine_ops) where dimensions = 3072;

      create table embedding_job (
        tenant_id uuid not null,
        id uuid not null default gen_random_uuid(),
        entity_id uuid not null,
        version integer not null,
        model text not null,
        attempts integer not null default 0,
        run_after timestamptz not null default now(),
        locked_by text,
        locked_until timestamptz,
        last_error text,
        created_at timestamptz not null default now(),
        constraint embedding_job_pkey primary key (tenant_id, id),
        constraint embedding_job_target_key unique (tenant_id, entity_id, version, model),
        constraint embedding_job_version_fkey foreign key (tenant_id, entity_id, version)
          references entity_version (tenant_id, entity_id, version) on delete cascade,
        constraint embedding_job_attempts_check check (attempts >= 0),
        constraint embedding_job_lock_check check ((locked_by is null) = (locked_until is null)),
        constraint embedding_job_last_error_check check (last_error is null or char_length(last_error) <= 4000)
      );
      comment on table embedding_job is
        'Queue: enqueue with insert ... on conflict on constraint embedding_job_target_key do nothing; workers claim across tenants with claim_embedding_jobs(), then work inside withTenant(job.tenant_id) and delete the job (or set run_after for a retry).';
      create index embedding_job_due_idx on embedding_job (run_after);

      alter table embedding enable row level security;
      alter table embedding force row level security;
      create policy embedding_tenant_isolation on embedding
        using (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid)
        with check (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid);

      alter table embedding_job enable row level security;
      alter table embedding_job force row level security;
      create policy embedding_job_tenant_isolation on embedding_job
        using (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid)
        with check (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid);
      -- Claiming jobs across tenants (claim_embedding_jobs, owned by promptcraft_system) and nothing else.
      create policy embedding_job_system_claim on embedding_job for all to promptcraft_system
        using (true) with check (true);

      grant select, insert, update, delete on embedding, embedding_job to promptcraft_search;
      grant select, update (attempts, locked_by, locked_until) on embedding_job to promptcraft_system;
    `);
  },
  async down(knex) {
    await knex.raw(`
      drop table if exists embedding_job;
      drop table if exists embedding;
    `);
  },
};
