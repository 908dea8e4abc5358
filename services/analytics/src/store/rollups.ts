import { sqlTime, withServiceRole, type Knex } from "@promptcraft/db";

/**
 * Usage rollups (migration 20261206231000_usage_rollups): `usage_rollup` holds, per tenant and UTC
 * hour, every `usage_event` row below the watermark; readers add the rows above it (the tail) in
 * the same statement, so an event counts the moment its ingest commits.
 */

/** Dimensions a summary groups by, each a fixed SQL expression over the rollup's columns. */
export type SummaryDimension = "kind" | "model" | "entity" | "version" | "user" | "label";
export type SummaryGranularity = "hour" | "day" | "month";

/** Absent uuid dimensions are stored as the nil UUID (so the rollup key is a plain primary key). */
export const NIL_UUID = "00000000-0000-0000-0000-000000000000";

// Only these fixed column lists reach the SQL text (the request picks among them).
const DIMENSION_COLUMNS: Record<SummaryDimension, readonly string[]> = {
  kind: ["kind"],
  model: ["model"],
  entity: ["entity_id"],
  // A version means something only with its entity.
  version: ["entity_id", "entity_version"],
  user: ["user_id"],
  label: ["label"],
};
const GROUP_COLUMNS = ["kind", "model", "entity_id", "entity_version", "user_id", "label"] as const;

/** A raw event as a rollup row of its hour (tail and partial hour). */
const TAIL_COLUMNS = `date_trunc('hour', e.occurred_at at time zone 'UTC') at time zone 'UTC', e.kind, coalesce(e.model, ''),
              coalesce(e.entity_id, '${NIL_UUID}'), coalesce(e.entity_version, 0), coalesce(e.user_id, '${NIL_UUID}'),
              coalesce(e.label, ''), 1, e.tokens_in, e.tokens_out, e.cost_usd, (e.latency_ms is not null)::int,
              coalesce(e.latency_ms, 0), null::bigint[], width_bucket(e.latency_ms, usage_latency_bounds()), e.occurred_at, e.occurred_at`;

/** Buckets of the latency histogram (`usage_latency_bounds()` has one bound fewer; a store test checks). */
export const LATENCY_BUCKETS = 41;
/**
 * The summed histogram of a group: rollup rows carry theirs (`latency_hist`), tail rows the index
 * of their one bucket (`latency_bucket`, 0-based). Native sums per bucket: a custom aggregate over
 * arrays cost seconds at 100k rows.
 */
const HISTOGRAM_SUM = `array[${Array.from({ length: LATENCY_BUCKETS }, (_, i) => `sum(coalesce(s.latency_hist[${i + 1}], 0) + (s.latency_bucket is not distinct from ${i})::int)`).join(", ")}]`;

export interface SummaryQuery {
  /** Inclusive, aligned to the granularity (so to whole hours). */
  start: Date;
  /** Exclusive. */
  end: Date;
  granularity: SummaryGranularity;
  groupBy: readonly SummaryDimension[];
  kinds: readonly string[];
  entityId: string | null;
  userId: string | null;
}

/** The grouped dimensions of a summary group; null when not grouped by. */
export interface SummaryDimensions {
  kind: string | null;
  model: string | null;
  entityId: string | null;
  entityVersion: number | null;
  userId: string | null;
  label: string | null;
}

/** The summed figures of a group of usage (rollup rows and raw events alike). */
export interface UsageAggregate {
  eventCount: bigint;
  tokensIn: bigint;
  tokensOut: bigint;
  costMicros: bigint;
  latencyCount: bigint;
  latencySumMs: bigint;
  /** Counts per bucket of `usage_latency_bounds()`; null when no event had a latency. */
  latencyHist: bigint[] | null;
  uniqueUsers: bigint;
}

/** One group of a summary (`slot` null: the totals over the range). */
export interface SummaryRow extends SummaryDimensions, UsageAggregate {
  slot: Date | null;
}

/**
 * The usage of `tenantId` in `[start, end)` (`start` on a whole hour) as rows shaped like
 * `usage_rollup`'s — hour, the six dimensions, event_count, tokens_in, tokens_out, cost_usd,
 * latency_count, latency_sum_ms, latency_hist (rollup rows) or latency_bucket (raw events),
 * first_at, last_at — for a `with src as (…)` of one statement (one snapshot, so the watermark and
 * the rollups agree): rollup hours in `[start, cut)` with `cut` = `end` truncated to the hour, the
 * tail of those hours (`transaction_id >= watermark`), and every event of the partial hour
 * `[cut, end)`. Summaries and entity statistics read it alike.
 */
export function usageSource(tenantId: string, start: Date, end: Date): { sql: string; bindings: Knex.RawBinding[] } {
  const cut = sqlTime(new Date(Math.floor(end.getTime() / 3_600_000) * 3_600_000));
  const from = sqlTime(start);
  return {
    sql: `select r.hour, r.kind, r.model, r.entity_id, r.entity_version, r.user_id, r.label, r.event_count, r.tokens_in,
              r.tokens_out, r.cost_usd, r.latency_count, r.latency_sum_ms, r.latency_hist, null::int as latency_bucket,
              r.first_at, r.last_at
       from usage_rollup r
       where r.tenant_id = ?::uuid and r.hour >= ?::timestamptz and r.hour < ?::timestamptz
       union all
       select ${TAIL_COLUMNS}
       from usage_event e
       -- The tail of the rolled hours: a range scan of (tenant_id, transaction_id) past the watermark.
       where e.tenant_id = ?::uuid and e.transaction_id >= (select watermark from usage_rollup_state)
         and e.occurred_at >= ?::timestamptz and e.occurred_at < ?::timestamptz
       union all
       select ${TAIL_COLUMNS}
       from usage_event e
       -- The partial last hour, whole.
       where e.tenant_id = ?::uuid and e.occurred_at >= ?::timestamptz and e.occurred_at < ?::timestamptz`,
    bindings: [tenantId, from, cut, tenantId, from, cut, tenantId, cut, sqlTime(end)],
  };
}

/** An aggregate's columns (`sum(…)::text as event_count`…) as {@link usageAggregateOf} reads them. */
export const AGGREGATE_COLUMNS = `sum(s.event_count)::text as event_count, sum(s.tokens_in)::text as tokens_in, sum(s.tokens_out)::text as tokens_out,
            round(sum(s.cost_usd) * 1000000)::text as cost_micros, sum(s.latency_count)::text as latency_count,
            sum(s.latency_sum_ms)::text as latency_sum_ms, ${HISTOGRAM_SUM}::text[] as latency_hist,
            count(distinct nullif(s.user_id, '${NIL_UUID}'))::text as unique_users`;

/** The raw aggregate columns of a row selected with {@link AGGREGATE_COLUMNS}. */
export interface RawAggregate {
  event_count: string | null;
  tokens_in: string | null;
  tokens_out: string | null;
  cost_micros: string | null;
  latency_count: string | null;
  latency_sum_ms: string | null;
  latency_hist: (string | null)[] | null;
  unique_users: string | null;
}

export function usageAggregateOf(r: RawAggregate): UsageAggregate {
  return {
    eventCount: BigInt(r.event_count ?? 0),
    tokensIn: BigInt(r.tokens_in ?? 0),
    tokensOut: BigInt(r.tokens_out ?? 0),
    costMicros: BigInt(r.cost_micros ?? 0),
    latencyCount: BigInt(r.latency_count ?? 0),
    latencySumMs: BigInt(r.latency_sum_ms ?? 0),
    latencyHist: r.latency_hist === null ? null : r.latency_hist.map((c) => BigInt(c ?? 0)),
    uniqueUsers: BigInt(r.unique_users ?? 0),
  };
}

interface RawSummaryRow extends RawAggregate {
  is_total: number;
  slot: Date | null;
  kind: string | null;
  model: string | null;
  entity_id: string | null;
  entity_version: number | null;
  user_id: string | null;
  label: string | null;
}

/**
 * The rows of a usage summary for `tenantId`, one per time slot × grouped dimensions, plus one
 * totals row, from one statement over {@link usageSource}.
 */
export async function usageSummary(trx: Knex.Transaction, tenantId: string, q: SummaryQuery): Promise<SummaryRow[]> {
  const grouped = GROUP_COLUMNS.filter((c) => q.groupBy.some((d) => DIMENSION_COLUMNS[d].includes(c)));
  const select = GROUP_COLUMNS.map((c) => (grouped.includes(c) ? `s.${c}` : `null as ${c}`)).join(", ");
  const filters = [
    q.kinds.length > 0 ? "s.kind = any(?::text[])" : null,
    q.entityId !== null ? "s.entity_id = ?::uuid" : null,
    q.userId !== null ? "s.user_id = ?::uuid" : null,
  ].filter((f) => f !== null);
  const filterArgs = [...(q.kinds.length > 0 ? [q.kinds] : []), ...(q.entityId !== null ? [q.entityId] : []), ...(q.userId !== null ? [q.userId] : [])];
  const source = usageSource(tenantId, q.start, q.end);
  // The 41 histogram sums make the plan look costly enough for JIT, whose compilation (~350 ms)
  // cost more than the whole query without it.
  await trx.raw("set local jit = off");
  const { rows } = await trx.raw<{ rows: RawSummaryRow[] }>(
    `with src as (${source.sql})
     select grouping(s.slot) as is_total, s.slot, ${select}, ${AGGREGATE_COLUMNS}
     from (select date_trunc(?, src.hour at time zone 'UTC') at time zone 'UTC' as slot, src.* from src) s
     ${filters.length > 0 ? `where ${filters.join(" and ")}` : ""}
     group by grouping sets ((s.slot${grouped.map((c) => `, s.${c}`).join("")}), ())`,
    [...source.bindings, q.granularity, ...filterArgs] as Knex.RawBinding[],
  );
  return rows.map((r) => ({
    slot: r.is_total === 1 ? null : r.slot,
    kind: r.kind,
    model: r.model,
    entityId: r.entity_id,
    entityVersion: r.entity_version,
    userId: r.user_id,
    label: r.label,
    ...usageAggregateOf(r),
  }));
}

/** Counts, tokens and cost of usage (one kind, or `kind` null: all kinds). */
export interface UsageCounts {
  kind: string | null;
  eventCount: bigint;
  /** Input + output. */
  tokens: bigint;
  costMicros: bigint;
}

/**
 * `tenantId`'s event count, tokens and cost in `[start, end)` per kind plus a row over all kinds
 * (`kind` null), over {@link usageSource} like the summaries: the figures quotas need, without the
 * histograms and distinct users that cost a summary most of its time.
 */
export async function usageCountsByKind(trx: Knex.Transaction, tenantId: string, start: Date, end: Date): Promise<UsageCounts[]> {
  const source = usageSource(tenantId, start, end);
  // A month of rows is estimated costly enough for JIT, whose compilation costs more than the sums.
  await trx.raw("set local jit = off");
  const { rows } = await trx.raw<{ rows: { is_total: number; kind: string; event_count: string; tokens: string; cost_micros: string }[] }>(
    `with src as (${source.sql})
     select grouping(s.kind) as is_total, s.kind, sum(s.event_count)::text as event_count,
            sum(s.tokens_in::bigint + s.tokens_out::bigint)::text as tokens, round(sum(s.cost_usd) * 1000000)::text as cost_micros
     from src s
     group by grouping sets ((s.kind), ())`,
    source.bindings,
  );
  return rows.map((r) => ({
    kind: r.is_total === 1 ? null : r.kind,
    eventCount: BigInt(r.event_count ?? 0),
    tokens: BigInt(r.tokens ?? 0),
    costMicros: BigInt(r.cost_micros ?? 0),
  }));
}

/** What one run of the refresher did: rolled new rows, found nothing new, or left it to another replica. */
export interface RollupRefresh {
  status: "rolled" | "current" | "skipped";
  watermark: string;
  rollupRows: number;
}

/**
 * Rolls the final rows past the watermark into `usage_rollup` (`refresh_usage_rollup()`, SECURITY
 * DEFINER: it reads every tenant's events) in one transaction as promptcraft_analytics.
 */
export async function refreshUsageRollup(knex: Knex, signal?: AbortSignal): Promise<RollupRefresh> {
  return withServiceRole(
    knex,
    "analytics",
    async (trx) => {
      const { rows } = await trx.raw<{ rows: { status: RollupRefresh["status"]; watermark: string; rollup_rows: string }[] }>(
        "select status, watermark::text as watermark, rollup_rows::text as rollup_rows from refresh_usage_rollup()",
      );
      const r = rows[0]!;
      return { status: r.status, watermark: r.watermark, rollupRows: Number(r.rollup_rows) };
    },
    { signal },
  );
}

/** The latency histogram's bucket bounds as the database defines them (tests hold the domain's copy to it). */
export async function latencyBounds(trx: Knex.Transaction): Promise<number[]> {
  const { rows } = await trx.raw<{ rows: { b: number[] }[] }>("select usage_latency_bounds() as b");
  return rows[0]!.b;
}

/** The tenant's plan (identity's `tenant.plan`, a column analytics may read). */
export async function tenantPlan(trx: Knex.Transaction, tenantId: string): Promise<string> {
  const { rows } = await trx.raw<{ rows: { plan: string }[] }>("select plan from tenant where id = ?", [tenantId]);
  return rows[0]?.plan ?? "";
}
