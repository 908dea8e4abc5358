import { selectRows, tenantReads, type Knex, type Reader, type SqlBuilder, type TenantReads, type TenantScope } from "@promptcraft/db";
import { entityPermissionRankSql, type AccessPrincipal } from "@promptcraft/platform";

/*
 * Search's queries. Each applies content's access rule (entityPermissionRankSql, shared with
 * content) and the request's filters INSIDE the ranked query, before LIMIT: a result never holds
 * an entity the caller could not GetEntity, and a page comes back short only when fewer visible
 * matches exist. Aliases: `e` entity, `cv` its current version.
 */

/** Text search configuration of `entity_version.search` (content's generated column). */
const TS_CONFIG = "english";
/** Dimensions that have a partial HNSW index on `(vector::halfvec(N))` (search migrations). */
const INDEXED_HALFVEC_DIMENSIONS = new Set([384, 768, 1024, 1536, 3072]);

/** The filters of a search, in store terms. */
export interface SearchFilters {
  types: string[];
  tags: string[];
  statuses: string[];
  labels: string[];
  owner: { kind: "user" | "api_key"; id: string } | null;
  updatedAfter: string | null;
  updatedBefore: string | null;
}

/** The WHERE conditions of visibility and filters over `e` and `cv` (both already joined, current and live). */
function visibleAndFiltered(knex: SqlBuilder, principal: AccessPrincipal, f: SearchFilters): Knex.Raw {
  return knex.raw(
    `? >= 1
     and (cardinality(?::text[]) = 0 or e.entity_type = any(?::text[]))
     and cv.tags @> ?::text[]
     and (cardinality(?::text[]) = 0 or cv.status = any(?::text[]))
     and (cardinality(?::text[]) = 0 or ?::text[] <@ array(select l.label from entity_label l
                                                           where l.tenant_id = e.tenant_id and l.entity_id = e.id and l.valid_to is null))
     and (?::uuid is null or e.owner_id = ?::uuid)
     and (?::uuid is null or e.owner_api_key_id = ?::uuid)
     and (?::timestamptz is null or cv.valid_from >= ?::timestamptz)
     and (?::timestamptz is null or cv.valid_from < ?::timestamptz)`,
    [
      entityPermissionRankSql(knex, principal),
      f.types,
      f.types,
      f.tags,
      f.statuses,
      f.statuses,
      f.labels,
      f.labels,
      f.owner?.kind === "user" ? f.owner.id : null,
      f.owner?.kind === "user" ? f.owner.id : null,
      f.owner?.kind === "api_key" ? f.owner.id : null,
      f.owner?.kind === "api_key" ? f.owner.id : null,
      f.updatedAfter,
      f.updatedAfter,
      f.updatedBefore,
      f.updatedBefore,
    ],
  );
}

/** A semantic candidate: cosine similarity (−1..1) of the current version's embedding to the query, with what a result shows of it. */
export interface SemanticHit {
  entity_id: string;
  version: number;
  similarity: number;
  entity_type: string;
  title: string;
  tags: string[];
  valid_from: Date;
}

/** The tuning of a semantic query (config). */
export interface AnnTuning {
  /** pgvector `hnsw.ef_search`: the candidate list of the graph search. */
  efSearch: number;
  /** pgvector `hnsw.max_scan_tuples`: most index tuples an iterative scan visits. */
  maxScanTuples: number;
}

/**
 * Reads of search, each one read-only round trip (readAsTenant) with `settings` for it only, and
 * planned for its own values (`plan_cache_mode = force_custom_plan`). The generic plan PostgreSQL
 * switches a prepared statement to after five runs is ruinous here: it cannot see how many
 * versions a text query or a filter matches (full text over 100,000 versions: 35 ms → 1 s), and it
 * converts the query vector from text again for every row it compares (a hybrid search's semantic
 * side over 20,000 versions: 20 ms → 200–300 ms). Planning costs 1–2 ms a read.
 */
export function searchReads(knex: Knex, scope: TenantScope, settings: Record<string, string> = {}): TenantReads {
  return tenantReads(knex, { ...scope, settings: { plan_cache_mode: "force_custom_plan", ...settings } });
}

/**
 * The `limit` nearest visible, filtered current versions to `vectorSql` by cosine similarity, with
 * similarity ≥ `minSimilarity` (when given); ties by entity id, through the HNSW index of the
 * model's dimension. The ORDER BY is the index's expression (a literal cast, so the planner matches
 * the partial index's predicate); pgvector's iterative scan (`relaxed_order`) keeps walking the
 * graph until enough rows passed the filters, the access rule and the threshold, or `maxScanTuples`
 * index tuples were visited (bounded: a threshold nothing meets ends there). It takes 4 × `limit`
 * candidates (but no more than `efSearch`, what the graph search's first pass holds anyway, and
 * never fewer than `limit`) and ranks them again by the exact distance of the stored
 * full-precision vectors: the index holds half precision, and a relaxed scan returns its rows only
 * roughly in order, so with a filter the first `limit` are often not the best. Measured at 100,000
 * versions (docs/benchmarks.md): recall@10 with a tag on 10 % of them 0.88 → 0.97, on 1 % 0.95 → 1.
 *
 * Each hit carries what a result shows (one round trip: ranked and read in the same snapshot). The
 * query vector is sent once (subquery `q`, pulled up by the planner into a constant, so the index
 * still serves the ORDER BY): 384 numbers as text are 4–8 KB.
 * `excludeEntityId`: leave one entity out (FindSimilarEntities' own).
 */
export async function semanticHits(
  knex: Knex,
  scope: TenantScope,
  principal: AccessPrincipal,
  q: { model: string; dimensions: number; vectorSql: string; filters: SearchFilters; minSimilarity: number | null; limit: number; excludeEntityId?: string },
  tuning: AnnTuning,
): Promise<SemanticHit[]> {
  const d = Math.trunc(q.dimensions);
  const cast = INDEXED_HALFVEC_DIMENSIONS.has(d) ? `::halfvec(${d})` : "";
  const reads = searchReads(knex, scope, {
    "hnsw.iterative_scan": "relaxed_order",
    "hnsw.ef_search": String(tuning.efSearch),
    "hnsw.max_scan_tuples": String(tuning.maxScanTuples),
  });
  return selectRows<SemanticHit>(
    reads,
    `select entity_id, version, 1 - distance as similarity, entity_type, title, tags, valid_from from (
       select em.entity_id, em.version, (em.vector <=> q.v)::double precision as distance,
              e.entity_type, cv.title, cv.tags, cv.valid_from
       from (select ?::vector as v) q
       cross join embedding em
       join entity_version cv on cv.tenant_id = em.tenant_id and cv.entity_id = em.entity_id and cv.version = em.version
        and cv.valid_to is null
       join entity e on e.tenant_id = em.tenant_id and e.id = em.entity_id and e.deleted_at is null
       where em.tenant_id = ? and em.model = ? and em.dimensions = ${d} and em.status = 'completed'
         and (?::uuid is null or em.entity_id <> ?::uuid)
         and (?::float8 is null or (em.vector${cast} <=> q.v${cast}) <= 1 - ?::float8)
         and ?
       order by em.vector${cast} <=> q.v${cast}
       limit ?
     ) s
     where ?::float8 is null or distance <= 1 - ?::float8
     order by distance, entity_id
     limit ?`,
    [
      q.vectorSql,
      scope.tenantId,
      q.model,
      q.excludeEntityId ?? null,
      q.excludeEntityId ?? null,
      q.minSimilarity,
      q.minSimilarity,
      visibleAndFiltered(reads, principal, q.filters),
      Math.max(q.limit, Math.min(4 * q.limit, tuning.efSearch)),
      q.minSimilarity,
      q.minSimilarity,
      q.limit,
    ],
  );
}

/** A full-text candidate: `ts_rank(search, query, 32)`, in [0, 1). */
export interface TextHit {
  entity_id: string;
  version: number;
  rank: number;
}

/**
 * Visible, filtered current versions matching `websearch_to_tsquery(query)` over content's
 * generated `entity_version.search` (title A, description B, tags C, string values of content D),
 * best `ts_rank` first (normalisation 32: rank / (rank + 1)), ties by entity id. The matches come
 * from `search_text_matches` (its GIN index; see its migration for why a function), then are joined
 * under row-level security, the access rule and the filters.
 */
export async function textHits(reader: Reader, tenantId: string, principal: AccessPrincipal, q: { query: string; filters: SearchFilters; minRank: number | null; limit: number; offset: number }): Promise<TextHit[]> {
  return selectRows<TextHit>(
    reader,
    `select cv.entity_id, cv.version, m.rank::double precision as rank
     from search_text_matches(websearch_to_tsquery('${TS_CONFIG}', ?)) m
     join entity_version cv on cv.tenant_id = ? and cv.entity_id = m.entity_id and cv.version = m.version and cv.valid_to is null
     join entity e on e.tenant_id = cv.tenant_id and e.id = cv.entity_id and e.deleted_at is null
     where (?::float8 is null or m.rank >= ?::float8)
       and ?
     order by rank desc, cv.entity_id
     limit ? offset ?`,
    [q.query, tenantId, q.minRank, q.minRank, visibleAndFiltered(reader, principal, q.filters), q.limit, q.offset],
  );
}

/** What a result shows of its version. */
export interface ResultDetails {
  entity_id: string;
  version: number;
  entity_type: string;
  title: string;
  tags: string[];
  valid_from: Date;
  /** ts_headline around the text match (`**` marks). */
  snippet: string;
}

/**
 * Title, type, tags, time and snippet of the given current versions (a page's rows of a full-text
 * or hybrid search). The access rule applies again: a version that stopped being visible since it
 * was ranked is left out.
 */
export async function resultDetails(reader: Reader, tenantId: string, principal: AccessPrincipal, entityIds: string[], textQuery: string): Promise<ResultDetails[]> {
  if (entityIds.length === 0) return [];
  return selectRows<ResultDetails>(
    reader,
    `select cv.entity_id, cv.version, e.entity_type, cv.title, cv.tags, cv.valid_from,
            ts_headline('${TS_CONFIG}',
              concat_ws(' ', cv.title, cv.description,
                (select string_agg(s #>> '{}', ' ') from jsonb_path_query(cv.content, 'strict $.** \\? (@.type() == "string")') s)),
              websearch_to_tsquery('${TS_CONFIG}', ?::text),
              'StartSel=**, StopSel=**, MaxWords=30, MinWords=10, MaxFragments=2, FragmentDelimiter=" … "') as snippet
     from entity_version cv
     join entity e on e.tenant_id = cv.tenant_id and e.id = cv.entity_id and e.deleted_at is null
     where cv.tenant_id = ? and cv.entity_id = any(?::uuid[]) and cv.valid_to is null
       and ? >= 1`,
    [textQuery, tenantId, entityIds, entityPermissionRankSql(reader, principal)],
  );
}

/**
 * Visible, filtered current versions that have no completed embedding of `model` yet (queued, or
 * failed), counted up to `cap`: what semantic search cannot find until the pipeline catches up.
 */
export async function unembeddedCount(reader: Reader, tenantId: string, principal: AccessPrincipal, model: string, filters: SearchFilters, cap: number): Promise<number> {
  const rows = await selectRows<{ n: number }>(
    reader,
    `select count(*)::int as n from (
       select 1
       from (select j.entity_id, j.version from embedding_job j where j.tenant_id = ? and j.model = ?
             union
             select em.entity_id, em.version from embedding em where em.tenant_id = ? and em.model = ? and em.status <> 'completed') w
       join entity_version cv on cv.tenant_id = ? and cv.entity_id = w.entity_id and cv.version = w.version and cv.valid_to is null
       join entity e on e.tenant_id = cv.tenant_id and e.id = cv.entity_id and e.deleted_at is null
       where not exists (select 1 from embedding done where done.tenant_id = cv.tenant_id and done.entity_id = cv.entity_id
                           and done.version = cv.version and done.model = ? and done.status = 'completed')
         and ?
       limit ?
     ) x`,
    [tenantId, model, tenantId, model, tenantId, model, visibleAndFiltered(reader, principal, filters), cap],
  );
  return rows[0]!.n;
}

/** The stored vector (pgvector text) of an entity's version for a model, if completed; with the caller's rank on the entity. */
export async function entityVector(
  reader: Reader,
  tenantId: string,
  principal: AccessPrincipal,
  entityId: string,
  version: number | null,
  model: string,
): Promise<{ permission: number; version: number | null; vector: string | null } | undefined> {
  const rows = await selectRows<{ permission: number; version: number | null; vector: string | null }>(
    reader,
    `select ? as permission, v.version, em.vector::text as vector
     from entity e
     join entity_version cv on cv.tenant_id = e.tenant_id and cv.entity_id = e.id and cv.valid_to is null
     left join entity_version v on v.tenant_id = e.tenant_id and v.entity_id = e.id and v.version = coalesce(?::int, cv.version)
     left join embedding em on em.tenant_id = e.tenant_id and em.entity_id = e.id and em.version = v.version and em.model = ?
       and em.status = 'completed'
     where e.tenant_id = ? and e.id = ? and e.deleted_at is null`,
    [entityPermissionRankSql(reader, principal), version, model, tenantId, entityId],
  );
  return rows[0];
}
