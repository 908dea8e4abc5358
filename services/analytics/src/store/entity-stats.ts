import { sqlTime, type Knex } from "@promptcraft/db";
import { AGGREGATE_COLUMNS, NIL_UUID, usageAggregateOf, usageSource, type RawAggregate, type UsageAggregate } from "./rollups.js";

/**
 * Entity statistics (GetEntityStats, ListEntityStats): the usage of entities and of their versions
 * over {@link usageSource} (hourly rollups plus the not-yet-rolled tail, so an event counts the
 * moment its ingest commits), joined for listing with the read model `entity_stats` (types,
 * favorite counts; `current_tenant_entity_stats` returns the transaction's tenant only). And the
 * label-move comparison, read from the raw events of one entity in two bounded windows.
 */

/** Usage from the start of retention: every retained event counts. */
const ALL_TIME = new Date(0);

/** Usage of one entity, or of one version of it, by kind and in total. */
export interface EntityUsageRow extends UsageAggregate {
  entityId: string;
  /** Null: the entity's total; 0: usage reported without a version. */
  entityVersion: number | null;
  viewCount: bigint;
  renderCount: bigint;
  executeCount: bigint;
  llmCallCount: bigint;
  firstAt: Date | null;
  lastAt: Date | null;
}

/** Events per kind of a group, as `type` (`text` for the driver, `bigint` to compute with). */
const kindCountColumns = (type: "text" | "bigint") =>
  (["view", "render", "execute", "llm_call"] as const).map((k) => `coalesce(sum(s.event_count) filter (where s.kind = '${k}'), 0)::${type} as ${k}_count`).join(", ");

interface RawEntityUsage extends RawAggregate {
  is_entity_total: number;
  entity_id: string;
  entity_version: number | null;
  view_count: string;
  render_count: string;
  execute_count: string;
  llm_call_count: string;
  first_at: Date | null;
  last_at: Date | null;
}

/**
 * The usage of `entityIds` of `tenantId` up to `end` (all retained usage): per entity (version
 * null) and per entity and version. Entities without usage have no rows.
 */
export async function entityUsage(trx: Knex.Transaction, tenantId: string, entityIds: readonly string[], end: Date): Promise<EntityUsageRow[]> {
  if (entityIds.length === 0) return [];
  const source = usageSource(tenantId, ALL_TIME, end, "month");
  // As for summaries: the histogram sums would make the planner compile (JIT) for longer than the
  // query runs. And the tail is a few small index scans per partition: starting parallel workers for
  // them cost more (~30 ms at 1M events) than they saved.
  await trx.raw("set local jit = off; set local max_parallel_workers_per_gather = 0");
  const { rows } = await trx.raw<{ rows: RawEntityUsage[] }>(
    `with src as (${source.sql})
     select grouping(s.entity_version) as is_entity_total, s.entity_id::text as entity_id, s.entity_version,
            ${kindCountColumns("text")}, ${AGGREGATE_COLUMNS}, min(s.first_at) as first_at, max(s.last_at) as last_at
     from src s
     where s.entity_id = any(?::uuid[])
     group by grouping sets ((s.entity_id), (s.entity_id, s.entity_version))`,
    [...source.bindings, entityIds] as Knex.RawBinding[],
  );
  return rows.map((r) => ({
    entityId: r.entity_id,
    entityVersion: r.is_entity_total === 1 ? null : r.entity_version,
    viewCount: BigInt(r.view_count),
    renderCount: BigInt(r.render_count),
    executeCount: BigInt(r.execute_count),
    llmCallCount: BigInt(r.llm_call_count),
    firstAt: r.first_at,
    lastAt: r.last_at,
    ...usageAggregateOf(r),
  }));
}

/** What ListEntityStats orders by (each descending, then by entity id). */
export type EntityStatsOrder = "render_count" | "view_count" | "execute_count" | "llm_call_count" | "cost_micros" | "last_use_time" | "favorite_count";

// Only these fixed expressions reach the SQL text: each is a bigint, -1 when absent, so that one
// keyset (key desc, entity_id asc) pages every order.
const ORDER_KEYS: Record<EntityStatsOrder, string> = {
  render_count: "coalesce(u.render_count, 0)",
  view_count: "coalesce(u.view_count, 0)",
  execute_count: "coalesce(u.execute_count, 0)",
  llm_call_count: "coalesce(u.llm_call_count, 0)",
  cost_micros: "coalesce(u.cost_micros, 0)",
  last_use_time: "coalesce((extract(epoch from u.last_at) * 1000000)::bigint, -1)",
  favorite_count: "coalesce(rm.favorite_count, 0)",
};

/** One entity of a ListEntityStats page: its order key and what the read model knows of it. */
export interface ListedEntity {
  entityId: string;
  /** The sort key (decimal), for the page token. */
  key: string;
  /** From the read model; null for an entity it does not hold yet. */
  entityType: string | null;
  favoriteCount: bigint;
  versionCount: number | null;
}

export interface ListEntitiesQuery {
  order: EntityStatsOrder;
  /** Stored entity types (`template`…); empty: all. */
  types: readonly string[];
  /** Usage counted up to here. */
  end: Date;
  after: { key: string; entityId: string } | null;
  limit: number;
}

/**
 * A page of the entities of `tenantId` with usage or in the read model (not deleted there), in
 * `order` descending then by id, after the keyset `after`.
 */
export async function listEntities(trx: Knex.Transaction, tenantId: string, q: ListEntitiesQuery): Promise<ListedEntity[]> {
  const source = usageSource(tenantId, ALL_TIME, q.end, "month");
  const key = ORDER_KEYS[q.order];
  // No parallel workers for the tail's small index scans (see entityUsage).
  await trx.raw("set local max_parallel_workers_per_gather = 0");
  const { rows } = await trx.raw<{ rows: { entity_id: string; k: string; entity_type: string | null; favorite_count: string | null; version_count: number | null }[] }>(
    `with src as (${source.sql}),
     u as (
       select s.entity_id, ${kindCountColumns("bigint")},
              round(sum(s.cost_usd) * 1000000)::bigint as cost_micros, max(s.last_at) as last_at
       from src s
       where s.entity_id <> '${NIL_UUID}'
       group by s.entity_id
     ),
     rm as (
       select x.entity_id, x.entity_type, x.favorite_count, x.version_count, x.deleted
       from current_tenant_entity_stats x
       where x.tenant_id = ?::uuid
     ),
     listed as (
       select coalesce(u.entity_id, rm.entity_id) as entity_id, (${key})::bigint as k, rm.entity_type, rm.favorite_count,
              rm.version_count
       from u full join rm on rm.entity_id = u.entity_id
       where not coalesce(rm.deleted, false)
     )
     select l.entity_id::text as entity_id, l.k::text as k, l.entity_type, l.favorite_count::text as favorite_count, l.version_count
     from listed l
     where (?::text[] is null or l.entity_type = any(?::text[]))
       and (?::bigint is null or l.k < ?::bigint or (l.k = ?::bigint and l.entity_id > ?::uuid))
     order by l.k desc, l.entity_id
     limit ?`,
    [
      ...source.bindings,
      tenantId,
      q.types.length > 0 ? q.types : null,
      q.types.length > 0 ? q.types : null,
      q.after?.key ?? null,
      q.after?.key ?? null,
      q.after?.key ?? null,
      q.after?.entityId ?? null,
      q.limit,
    ] as Knex.RawBinding[],
  );
  return rows.map((r) => ({
    entityId: r.entity_id,
    key: r.k,
    entityType: r.entity_type,
    favoriteCount: BigInt(r.favorite_count ?? 0),
    versionCount: r.version_count,
  }));
}

/** The read model's favorite count of one entity (0 when it does not hold the entity). */
export async function favoriteCount(trx: Knex.Transaction, tenantId: string, entityId: string): Promise<bigint> {
  const { rows } = await trx.raw<{ rows: { favorite_count: string }[] }>(
    "select favorite_count::text as favorite_count from current_tenant_entity_stats where tenant_id = ?::uuid and entity_id = ?::uuid",
    [tenantId, entityId],
  );
  return BigInt(rows[0]?.favorite_count ?? 0);
}

/** When the read model `entity_stats` was last refreshed; null if never. */
export async function entityStatsRefreshTime(trx: Knex.Transaction): Promise<Date | null> {
  const { rows } = await trx.raw<{ rows: { last_refreshed_at: Date | null }[] }>("select last_refreshed_at from read_model_refresh where view_name = 'entity_stats'");
  return rows[0]?.last_refreshed_at ?? null;
}

/** One side of a label move: the events recorded with the label and `version` in `[start, end)`. */
export interface LabelWindow {
  start: Date;
  end: Date;
  version: number;
}

/** Exact figures of the events of one window. */
export interface WindowFigures {
  eventCount: bigint;
  tokensIn: bigint;
  tokensOut: bigint;
  costMicros: bigint;
  uniqueUsers: bigint;
  /** Null when no event reported a latency (or none at all). */
  meanLatencyMs: number | null;
  p50LatencyMs: number | null;
  p95LatencyMs: number | null;
  p99LatencyMs: number | null;
  /** Null without events. */
  meanCostMicros: number | null;
  medianCostMicros: number | null;
  meanTokensIn: number | null;
  meanTokensOut: number | null;
}

interface RawWindow {
  side: number;
  event_count: string;
  tokens_in: string | null;
  tokens_out: string | null;
  cost_micros: string | null;
  unique_users: string;
  mean_latency: number | null;
  p50: number | null;
  p95: number | null;
  p99: number | null;
  mean_cost: number | null;
  median_cost: number | null;
  mean_in: number | null;
  mean_out: number | null;
}

/**
 * Exact figures of the events of entity `entityId` recorded with `label`, one per window, in the
 * windows' order. Reads the raw events (index `usage_event_entity_idx`: tenant, entity, time): the
 * medians of cost need each event's cost, which the rollups do not keep.
 */
export async function labelWindowFigures(
  trx: Knex.Transaction,
  tenantId: string,
  q: { entityId: string; label: string; kinds: readonly string[]; windows: readonly LabelWindow[] },
): Promise<WindowFigures[]> {
  const sides = q.windows.map(
    (_, i) => `select ${i} as side, e.tokens_in, e.tokens_out, e.cost_usd, e.latency_ms, e.user_id
       from usage_event e
       where e.tenant_id = ?::uuid and e.entity_id = ?::uuid and e.occurred_at >= ?::timestamptz and e.occurred_at < ?::timestamptz
         and e.label = ? and e.entity_version = ?${q.kinds.length > 0 ? " and e.kind = any(?::text[])" : ""}`,
  );
  const bindings = q.windows.flatMap((w) => [tenantId, q.entityId, sqlTime(w.start), sqlTime(w.end), q.label, w.version, ...(q.kinds.length > 0 ? [q.kinds] : [])]);
  const { rows } = await trx.raw<{ rows: RawWindow[] }>(
    `select x.side, count(*)::text as event_count, sum(x.tokens_in)::text as tokens_in, sum(x.tokens_out)::text as tokens_out,
            round(sum(x.cost_usd) * 1000000)::text as cost_micros, count(distinct x.user_id)::text as unique_users,
            avg(x.latency_ms)::float8 as mean_latency,
            percentile_cont(0.5) within group (order by x.latency_ms)::float8 as p50,
            percentile_cont(0.95) within group (order by x.latency_ms)::float8 as p95,
            percentile_cont(0.99) within group (order by x.latency_ms)::float8 as p99,
            (avg(x.cost_usd) * 1000000)::float8 as mean_cost,
            (percentile_cont(0.5) within group (order by x.cost_usd) * 1000000)::float8 as median_cost,
            avg(x.tokens_in)::float8 as mean_in, avg(x.tokens_out)::float8 as mean_out
     from (${sides.join(" union all ")}) x
     group by x.side`,
    bindings as Knex.RawBinding[],
  );
  return q.windows.map((_, i) => {
    const r = rows.find((row) => row.side === i);
    return {
      eventCount: BigInt(r?.event_count ?? 0),
      tokensIn: BigInt(r?.tokens_in ?? 0),
      tokensOut: BigInt(r?.tokens_out ?? 0),
      costMicros: BigInt(r?.cost_micros ?? 0),
      uniqueUsers: BigInt(r?.unique_users ?? 0),
      meanLatencyMs: r?.mean_latency ?? null,
      p50LatencyMs: r?.p50 ?? null,
      p95LatencyMs: r?.p95 ?? null,
      p99LatencyMs: r?.p99 ?? null,
      meanCostMicros: r?.mean_cost ?? null,
      medianCostMicros: r?.median_cost ?? null,
      meanTokensIn: r?.mean_in ?? null,
      meanTokensOut: r?.mean_out ?? null,
    };
  });
}
