import type { Migration } from "@promptcraft/db";

/**
 * The seed's `search_similar_entities`, fixed, and the job claim of the embedding pipeline.
 *
 * search_similar_entities(tenant, query vector, entity_type = null, limit = 10, model = null):
 * cosine similarity against the completed embeddings of the CURRENT versions of live entities of the
 * tenant. It orders by the same expression as the partial HNSW index for the query's dimension
 * (`vector::vector(384)`, ..., `vector::halfvec(1536)`), so the index is used; pgvector >= 0.8
 * iterative index scans (`hnsw.iterative_scan = relaxed_order`, set for the function's duration
 * only) keep scanning until the tenant/type filters have produced `limit` rows, and the outer query
 * restores exact order. SECURITY INVOKER: row-level security applies too.
 *
 *   select entity_id, title, similarity
 *   from search_similar_entities('<tenant>', '[0.1, 0.2, ...]'::vector, 'context', 10);
 *
 * claim_embedding_jobs(worker, limit, lease): SECURITY DEFINER (owned by promptcraft_system), because
 * the pipeline drains the queue of all tenants; it only leases due jobs (FOR UPDATE SKIP LOCKED, so
 * replicas never take the same job) and returns their keys. Executable by promptcraft_search only.
 */
export const createSearchFunctions: Migration = {
  name: "20261125094100_create_search_functions",
  async up(knex) {
    await knex.raw(`
      create function search_similar_entities(
        p_tenant_id uuid,
        p_query vector,
        p_entity_type text default null,
        p_limit integer default 10,
        p_model text default null)
      returns table (entity_id uuid, version integer, entity_type text, title text, model text,
                     similarity double precision)
      language plpgsql stable security invoker
      set search_path = pg_catalog, public
      set hnsw.iterative_scan = 'relaxed_order'
      as $fn$
      declare
        v_dims integer := vector_dims(p_query);
        v_cast text;
      begin
        if p_limit is null or p_limit < 1 or p_limit > 1000 then
          raise exception 'limit must be between 1 and 1000' using errcode = '22023';
        end if;
        v_cast := case
          when v_dims in (384, 768, 1024) then format('::vector(%s)', v_dims)
          when v_dims in (1536, 3072) then format('::halfvec(%s)', v_dims)
          else ''
        end;
        return query execute format($q$
          select s.entity_id, s.version, s.entity_type, s.title, s.model, 1 - s.distance
          from (
            select em.entity_id, em.version, en.entity_type, v.title, em.model,
                   (em.vector%1$s <=> $2%1$s)::double precision as distance
            from public.embedding em
            join public.entity_version v
              on v.tenant_id = em.tenant_id and v.entity_id = em.entity_id and v.version = em.version
             and v.valid_to is null
            join public.entity en
              on en.tenant_id = em.tenant_id and en.id = em.entity_id and en.deleted_at is null
            where em.tenant_id = $1 and em.dimensions = %2$s and em.status = 'completed'
              and ($3::text is null or en.entity_type = $3::text)
              and ($5::text is null or em.model = $5::text)
            order by em.vector%1$s <=> $2%1$s
            limit $4
          ) s
          order by s.distance, s.entity_id
        $q$, v_cast, v_dims)
        using p_tenant_id, p_query, p_entity_type, p_limit, p_model;
      end
      $fn$;
      comment on function search_similar_entities(uuid, vector, text, integer, text) is
        'Nearest current versions of live entities by cosine similarity (1 = same direction), HNSW with iterative scan.';

      create function claim_embedding_jobs(p_worker text, p_limit integer default 10,
                                           p_lease interval default interval '5 minutes')
      returns table (tenant_id uuid, id uuid, entity_id uuid, version integer, model text, attempts integer)
      language sql volatile security definer
      set search_path = pg_catalog, public
      as $fn$
        with due as (
          select j.tenant_id, j.id
          from public.embedding_job j
          where j.run_after <= now() and (j.locked_until is null or j.locked_until < now())
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
      alter function claim_embedding_jobs(text, integer, interval) owner to promptcraft_system;
      comment on function claim_embedding_jobs(text, integer, interval) is
        'Leases up to p_limit due embedding jobs of any tenant to a worker; process each inside withTenant(tenant_id).';

      revoke execute on function search_similar_entities(uuid, vector, text, integer, text) from public;
      revoke execute on function claim_embedding_jobs(text, integer, interval) from public;
      grant execute on function search_similar_entities(uuid, vector, text, integer, text) to promptcraft_search;
      grant execute on function claim_embedding_jobs(text, integer, interval) to promptcraft_search;
    `);
  },
  async down(knex) {
    await knex.raw(`
      drop function if exists claim_embedding_jobs(text, integer, interval);
      drop function if exists search_similar_entities(uuid, vector, text, integer, text);
    `);
  },
};
