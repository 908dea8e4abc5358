import { sqlTime, withServiceRole, type Knex } from "@promptcraft/db";

/**
 * Usage rollups (migrations 20261206231000_usage_rollups, 20261207030000_usage_rollup_daily):
 * `usage_rollup` (per tenant and UTC hour) and `usage_rollup_daily` (per UTC day) hold every
 * `usage_event` row below the watermark; readers add the rows above it (the tail) in
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

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

/** Buckets of the latency histogram (`usage_latency_bounds()` has one bound fewer; a store test checks). */
export const LATENCY_BUCKETS = 41;

/** The columns of a rollup row (hourly or daily) after its time, as the summary's source rows. */
const ROLLUP_COLUMNS = `r.kind, r.model, r.entity_id, r.entity_version, r.user_id, r.label, r.event_count, r.tokens_in,
              r.tokens_out, r.cost_usd, r.latency_count, r.latency_sum_ms, r.latency_hist, r.first_at, r.last_at`;

/**
 * Raw events (tail and partial hour) in their slot (the granularity is bound first), with their
 * absent dimensions as the rollups store them and the index of their latency bucket (0-based; null
 * without a latency).
 */
const RAW_EVENT_COLUMNS = `date_trunc(?, e.occurred_at at time zone 'UTC') at time zone 'UTC' as slot, e.occurred_at, e.kind,
              coalesce(e.model, '') as model, coalesce(e.entity_id, '${NIL_UUID}') as entity_id,
              coalesce(e.entity_version, 0) as entity_version, coalesce(e.user_id, '${NIL_UUID}') as user_id,
              coalesce(e.label, '') as label, e.tokens_in, e.tokens_out, e.cost_usd, e.latency_ms,
              width_bucket(e.latency_ms, usage_latency_bounds()) as latency_bucket`;

/**
 * Raw events grouped like rollup rows of their slot, so the final aggregate sums a few rows per
 * group whatever the tail's size; the histogram counted natively, one `count … filter` per bucket.
 */
const RAW_AS_ROLLUP = `select e.slot, e.kind, e.model, e.entity_id, e.entity_version, e.user_id, e.label, count(*) as event_count,
              sum(e.tokens_in) as tokens_in, sum(e.tokens_out) as tokens_out, sum(e.cost_usd) as cost_usd,
              count(e.latency_ms) as latency_count, coalesce(sum(e.latency_ms), 0) as latency_sum_ms,
              array[${Array.from({ length: LATENCY_BUCKETS }, (_, i) => `count(*) filter (where e.latency_bucket = ${i})`).join(", ")}]::bigint[] as latency_hist,
              min(e.occurred_at) as first_at, max(e.occurred_at) as last_at`;
const RAW_GROUP_BY = "group by e.slot, e.kind, e.model, e.entity_id, e.entity_version, e.user_id, e.label";

/** The summed histogram of a group (native sums per bucket: a custom aggregate over arrays cost seconds at 100k rows). */
const HISTOGRAM_SUM = `array[${Array.from({ length: LATENCY_BUCKETS }, (_, i) => `sum(s.latency_hist[${i + 1}])`).join(", ")}]`;

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

/** Filters applied inside each source (so raw events are grouped after them); absent: none. */
export interface UsageFilter {
  kinds?: readonly string[];
  entityId?: string | null;
  userId?: string | null;
}

/**
 * The usage of `tenantId` in `[start, end)` (`start` on a whole hour) as rollup-shaped rows — slot
 * (`date_trunc(granularity)`), the six dimensions, event_count, tokens_in, tokens_out, cost_usd,
 * latency_count, latency_sum_ms, latency_hist, first_at, last_at — for a `with src as (…)` of one
 * statement (one snapshot, so the watermark and the rollups agree). With `hourCut` = `end`
 * truncated to the hour: the rolled hours `[start, hourCut)` — for day and month slots their whole
 * UTC days from `usage_rollup_daily` (24× fewer rows) and the hours around them from
 * `usage_rollup`, for hour slots all from `usage_rollup` — plus the tail of those hours
 * (`transaction_id >= watermark`) and every event of the partial hour `[hourCut, end)`, raw events
 * grouped like rollup rows of their slot. Summaries, entity statistics and quotas read it alike.
 */
export function usageSource(
  tenantId: string,
  start: Date,
  end: Date,
  granularity: SummaryGranularity,
  filter: UsageFilter = {},
): { sql: string; bindings: Knex.RawBinding[] } {
  const hourCut = new Date(Math.floor(end.getTime() / HOUR_MS) * HOUR_MS);
  // Whole UTC days `[dayFrom, dayTo)` come from the daily rollup when slots are days or months (an
  // hour slot cannot be taken from a day's row); the rolled hours around them from the hourly one.
  const byDay = granularity !== "hour";
  const dayFrom = byDay ? new Date(Math.ceil(start.getTime() / DAY_MS) * DAY_MS) : start;
  const dayTo = byDay ? new Date(Math.max(dayFrom.getTime(), Math.floor(hourCut.getTime() / DAY_MS) * DAY_MS)) : start;
  const hoursBefore = new Date(Math.min(dayFrom.getTime(), hourCut.getTime()));
  const kinds = filter.kinds ?? [];
  const entityId = filter.entityId ?? null;
  const userId = filter.userId ?? null;
  const filters = (alias: string) =>
    [
      kinds.length > 0 ? `${alias}.kind = any(?::text[])` : null,
      entityId !== null ? `${alias}.entity_id = ?::uuid` : null,
      userId !== null ? `${alias}.user_id = ?::uuid` : null,
    ]
      .filter((f) => f !== null)
      .map((f) => ` and ${f}`)
      .join("");
  const filterArgs = [...(kinds.length > 0 ? [kinds] : []), ...(entityId !== null ? [entityId] : []), ...(userId !== null ? [userId] : [])];
  const from = sqlTime(start);
  return {
    sql: `select date_trunc(?, r.day at time zone 'UTC') at time zone 'UTC' as slot, ${ROLLUP_COLUMNS}
       from usage_rollup_daily r
       where r.tenant_id = ?::uuid and r.day >= ?::timestamptz and r.day < ?::timestamptz${filters("r")}
       union all
       select date_trunc(?, r.hour at time zone 'UTC') at time zone 'UTC' as slot, ${ROLLUP_COLUMNS}
       from usage_rollup r
       where r.tenant_id = ?::uuid
         and (r.hour >= ?::timestamptz and r.hour < ?::timestamptz or r.hour >= ?::timestamptz and r.hour < ?::timestamptz)${filters("r")}
       union all
       ${RAW_AS_ROLLUP}
       from (
         select ${RAW_EVENT_COLUMNS}
         from usage_event e
         -- The tail of the rolled hours: a range scan of (tenant_id, transaction_id) past the watermark.
         where e.tenant_id = ?::uuid and e.transaction_id >= (select watermark from usage_rollup_state)
           and e.occurred_at >= ?::timestamptz and e.occurred_at < ?::timestamptz
         union all
         select ${RAW_EVENT_COLUMNS}
         from usage_event e
         -- The partial last hour, whole.
         where e.tenant_id = ?::uuid and e.occurred_at >= ?::timestamptz and e.occurred_at < ?::timestamptz
       ) e
       where true${filters("e")}
       ${RAW_GROUP_BY}`,
    bindings: [
      ...[granularity, tenantId, sqlTime(dayFrom), sqlTime(dayTo), ...filterArgs],
      ...[granularity, tenantId, from, sqlTime(hoursBefore), sqlTime(dayTo), sqlTime(hourCut), ...filterArgs],
      ...[granularity, tenantId, from, sqlTime(hourCut)],
      ...[granularity, tenantId, sqlTime(hourCut), sqlTime(end)],
      ...filterArgs,
    ] as Knex.RawBinding[],
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
  const source = usageSource(tenantId, q.start, q.end, q.granularity, { kinds: q.kinds, entityId: q.entityId, userId: q.userId });
  // The 41 histogram sums make the plan look costly enough for JIT, whose compilation (~350 ms)
  // cost more than the whole query without it. The rows sorted for the final aggregate carry their
  // histograms: kept in memory (work_mem).
  await trx.raw("select set_config('jit', 'off', true), set_config('work_mem', '32MB', true)");
  const { rows } = await trx.raw<{ rows: RawSummaryRow[] }>(
    `with src as (${source.sql})
     select grouping(s.slot) as is_total, s.slot, ${select}, ${AGGREGATE_COLUMNS}
     from src s
     group by grouping sets ((s.slot${grouped.map((c) => `, s.${c}`).join("")}), ())`,
    source.bindings,
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
  const source = usageSource(tenantId, start, end, "month");
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
