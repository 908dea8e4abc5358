import type { Migration } from "@promptcraft/db";

/**
 * A model change triggers a reindex (issue 13): at start, the pipeline asks which tenants have
 * current versions of live entities that a configured model has never seen (no embedding row of
 * any status, nothing queued) — a model newly configured (EMBEDDING_PROVIDER=openai, another
 * EMBEDDING_MODEL) or one that was off for a while — and queues them inside each tenant.
 *
 * missing_embeddings(models): SECURITY DEFINER (owned by promptcraft_system) because the scan spans
 * tenants; it only counts, per tenant and model, and returns no entity data. The queueing itself
 * runs per tenant as promptcraft_search under row-level security. promptcraft_system gets SELECT
 * policies on exactly the key columns it reads (entity's are the ones analytics' read models
 * already granted). Executable by promptcraft_search only.
 */
export const createMissingEmbeddingsScan: Migration = {
  name: "20261207090100_create_missing_embeddings_scan",
  async up(knex) {
    await knex.raw(`
      create policy entity_search_scan on entity for select to promptcraft_system using (true);
      create policy entity_version_search_scan on entity_version for select to promptcraft_system using (true);
      create policy embedding_search_scan on embedding for select to promptcraft_system using (true);
      grant select (tenant_id, id, deleted_at) on entity to promptcraft_system;
      grant select (tenant_id, entity_id, version, valid_to) on entity_version to promptcraft_system;
      grant select (tenant_id, entity_id, version, model) on embedding to promptcraft_system;

      create function missing_embeddings(p_models text[])
      returns table (tenant_id uuid, model text, missing integer)
      language sql stable security definer
      set search_path = pg_catalog, public
      as $fn$
        select v.tenant_id, m.model, count(*)::integer
        from public.entity_version v
        join public.entity e on e.tenant_id = v.tenant_id and e.id = v.entity_id and e.deleted_at is null
        cross join unnest(p_models) as m(model)
        where v.valid_to is null
          and not exists (select 1 from public.embedding em
                          where em.tenant_id = v.tenant_id and em.entity_id = v.entity_id
                            and em.version = v.version and em.model = m.model)
          and not exists (select 1 from public.embedding_job j
                          where j.tenant_id = v.tenant_id and j.entity_id = v.entity_id
                            and j.version = v.version and j.model = m.model)
        group by v.tenant_id, m.model
      $fn$;
      alter function missing_embeddings(text[]) owner to promptcraft_system;
      comment on function missing_embeddings(text[]) is
        'Per tenant and model: current versions of live entities with no embedding row and nothing queued (a model new to them); queue them inside withTenant.';
      revoke execute on function missing_embeddings(text[]) from public;
      grant execute on function missing_embeddings(text[]) to promptcraft_search;
    `);
  },
  async down(knex) {
    // entity's columns stay granted: analytics' read models hold the same grant.
    await knex.raw(`
      drop function if exists missing_embeddings(text[]);
      revoke select (tenant_id, entity_id, version, model) on embedding from promptcraft_system;
      revoke select (tenant_id, entity_id, version, valid_to) on entity_version from promptcraft_system;
      drop policy if exists embedding_search_scan on embedding;
      drop policy if exists entity_version_search_scan on entity_version;
      drop policy if exists entity_search_scan on entity;
    `);
  },
};
