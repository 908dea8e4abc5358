import { withTenant, type Knex } from "@promptcraft/db";
import {
  decodePageCursor,
  filterSql,
  InvalidArgumentError,
  pageOf,
  pageSizeOf,
  parseFilter,
  type CallerContext,
  type FieldViolation,
  type FilterFields,
  type Logger,
  requireCallerRole,
  startIntervalJob,
  type IntervalJob,
} from "@promptcraft/platform";
import { listUsageEvents as listStoredUsageEvents, type StoredUsageEvent } from "../store/usage-list.js";
import { refreshUsageRollup, tenantPlan, usageSummary, NIL_UUID, type SummaryDimension, type SummaryDimensions, type SummaryGranularity, type UsageAggregate } from "../store/rollups.js";

/**
 * Usage summaries (issue 11, point 3): answered from the hourly rollups plus the not-yet-rolled
 * tail (store/rollups.ts), so an event counts as soon as its ingest is acknowledged. Any member
 * reads their own tenant's usage (the contract).
 */

/**
 * Upper-exclusive bounds (ms) of the latency histogram's buckets, as `usage_latency_bounds()` in
 * the database (a store test holds the two equal): 6 per decade, so a percentile read from the
 * histogram is within one bucket (at most ~50 % of the value, interpolated linearly inside it).
 */
export const LATENCY_BOUNDS_MS: readonly number[] = [
  1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700, 1000, 1500, 2000, 3000, 5000, 7000, 10000, 15000, 20000, 30000, 50000, 70000, 100000,
  150000, 200000, 300000, 500000, 700000, 1000000, 1500000, 2000000, 3000000, 5000000,
];

/**
 * The `q` quantile (0–1) of the latencies counted in `hist` (bucket i counts
 * `[bounds[i-1], bounds[i])`, bucket 0 those below the first bound), interpolated linearly inside
 * its bucket; undefined for an empty histogram.
 */
export function histogramQuantile(hist: readonly bigint[] | null, q: number, bounds: readonly number[] = LATENCY_BOUNDS_MS): number | undefined {
  if (hist === null) return undefined;
  const total = hist.reduce((a, b) => a + Number(b), 0);
  if (total === 0) return undefined;
  const rank = q * total;
  let before = 0;
  for (const [i, c] of hist.entries()) {
    const n = Number(c);
    if (n > 0 && before + n >= rank) {
      const lo = i === 0 ? 0 : bounds[i - 1]!;
      // The last bucket is open-ended; the contract caps a latency at one hour.
      const hi = i < bounds.length ? bounds[i]! : Math.max(lo, 3_600_000);
      return lo + ((hi - lo) * Math.max(0, rank - before)) / n;
    }
    before += n;
  }
  return bounds[bounds.length - 1];
}

/** Figures of one group (the contract's UsageTotals plus the percentiles). */
export interface UsageFigures {
  eventCount: bigint;
  tokensIn: bigint;
  tokensOut: bigint;
  costMicros: bigint;
  /** Mean latency in ms of the events that reported one. */
  averageLatencyMs: number | undefined;
  p50LatencyMs: number | undefined;
  p95LatencyMs: number | undefined;
  p99LatencyMs: number | undefined;
  uniqueUsers: bigint;
}

/** One bucket: a time slot and the grouped dimensions (absent model, entity, user: ""). */
export interface UsageSummaryBucket extends SummaryDimensions {
  start: Date;
  end: Date;
  figures: UsageFigures;
}

export interface UsageSummary {
  buckets: UsageSummaryBucket[];
  totals: UsageFigures;
  /** Everything acknowledged before the answer is included: the answer's own time. */
  freshness: Date;
}

export interface UsageSummaryRequest {
  start: Date;
  /** Undefined: now. */
  end: Date | undefined;
  granularity: SummaryGranularity;
  groupBy: readonly SummaryDimension[];
  kinds: readonly string[];
  entityId: string;
  userId: string;
}

/** The contract's limit on buckets per response. */
export const MAX_BUCKETS = 1000;

/** The start of the UTC slot of `granularity` that holds `t`. */
export function slotStart(t: Date, granularity: SummaryGranularity): Date {
  if (granularity === "hour") return new Date(Math.floor(t.getTime() / 3_600_000) * 3_600_000);
  if (granularity === "day") return new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth(), t.getUTCDate()));
  return new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth(), 1));
}

/** The end of the UTC slot of `granularity` that starts at `start`. */
export function slotEnd(start: Date, granularity: SummaryGranularity): Date {
  if (granularity === "hour") return new Date(start.getTime() + 3_600_000);
  if (granularity === "day") return new Date(start.getTime() + 86_400_000);
  return new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth() + 1, 1));
}

/** How many slots `[start, end)` spans. */
function slotCount(start: Date, end: Date, granularity: SummaryGranularity): number {
  let n = 0;
  for (let t = start; t < end && n <= MAX_BUCKETS; t = slotEnd(t, granularity)) n++;
  return n;
}

/** The contract's figures of an aggregate: means and percentiles (from the latency histogram). */
export function figuresOf(r: UsageAggregate): UsageFigures {
  return {
    eventCount: r.eventCount,
    tokensIn: r.tokensIn,
    tokensOut: r.tokensOut,
    costMicros: r.costMicros,
    averageLatencyMs: r.latencyCount > 0n ? Number(r.latencySumMs) / Number(r.latencyCount) : undefined,
    p50LatencyMs: histogramQuantile(r.latencyHist, 0.5),
    p95LatencyMs: histogramQuantile(r.latencyHist, 0.95),
    p99LatencyMs: histogramQuantile(r.latencyHist, 0.99),
    uniqueUsers: r.uniqueUsers,
  };
}

/** The figures of no usage at all. */
export const EMPTY_FIGURES: UsageFigures = {
  eventCount: 0n,
  tokensIn: 0n,
  tokensOut: 0n,
  costMicros: 0n,
  averageLatencyMs: undefined,
  p50LatencyMs: undefined,
  p95LatencyMs: undefined,
  p99LatencyMs: undefined,
  uniqueUsers: 0n,
};

/**
 * The caller's tenant's usage in `[start truncated to the granularity, end)`, in UTC buckets,
 * grouped by up to three dimensions: buckets in time order, then by descending cost; empty slots
 * omitted. INVALID_ARGUMENT (`end_time`) for a range that is empty or over {@link MAX_BUCKETS}
 * buckets.
 */
export async function getUsageSummary(db: Knex, caller: CallerContext, q: UsageSummaryRequest, now: Date = new Date()): Promise<UsageSummary> {
  const start = slotStart(q.start, q.granularity);
  const end = q.end ?? now;
  const violations: FieldViolation[] = [];
  if (end <= q.start) violations.push({ field: "end_time", description: "must be after start_time" });
  else if (slotCount(start, end, q.granularity) > MAX_BUCKETS) {
    violations.push({ field: "end_time", description: `the range spans more than ${MAX_BUCKETS} buckets of the granularity` });
  }
  if (violations.length > 0) throw new InvalidArgumentError(violations);
  const rows = await withTenant(db, { service: "analytics", tenantId: caller.tenantId, userId: caller.userId, signal: caller.signal }, (trx) =>
    usageSummary(trx, caller.tenantId, {
      start,
      end,
      granularity: q.granularity,
      groupBy: q.groupBy,
      kinds: q.kinds,
      entityId: q.entityId === "" ? null : q.entityId,
      userId: q.userId === "" ? null : q.userId,
    }),
  );
  const absent = (v: string | null, nil: string) => (v === nil ? "" : v);
  const buckets: UsageSummaryBucket[] = [];
  let totals = EMPTY_FIGURES;
  for (const r of rows) {
    if (r.slot === null) {
      if (r.eventCount > 0n) totals = figuresOf(r);
      continue;
    }
    buckets.push({
      start: r.slot,
      end: slotEnd(r.slot, q.granularity),
      kind: r.kind,
      model: r.model === null ? null : absent(r.model, ""),
      entityId: r.entityId === null ? null : absent(r.entityId, NIL_UUID),
      entityVersion: r.entityVersion,
      userId: r.userId === null ? null : absent(r.userId, NIL_UUID),
      label: r.label,
      figures: figuresOf(r),
    });
  }
  buckets.sort((a, b) => a.start.getTime() - b.start.getTime() || (b.figures.costMicros > a.figures.costMicros ? 1 : b.figures.costMicros < a.figures.costMicros ? -1 : 0));
  return { buckets, totals, freshness: now };
}

/**
 * Runs the rollup refresher every `intervalMs` (one run at a time in this process; among replicas
 * the advisory lock lets one run roll up). Readers never wait for it: they add the tail.
 */
export function startRollupRefresher(db: Knex, intervalMs: number, log: Logger): IntervalJob {
  // A pass is one short transaction: stopping lets it finish rather than cancelling it mid-way.
  return startIntervalJob("usage rollup refresh", intervalMs, () => refreshUsageRollup(db), log);
}

/** Stored kinds each contract kind name stands for (ListUsageEvents' `kind = USAGE_KIND_RENDER`). */
const KIND_FILTER_VALUES = {
  USAGE_KIND_VIEW: ["view"],
  USAGE_KIND_RENDER: ["render"],
  USAGE_KIND_EXECUTE: ["execute"],
  USAGE_KIND_SEARCH: ["search"],
  USAGE_KIND_LLM_CALL: ["llm_call"],
  USAGE_KIND_EMBEDDING: ["embedding"],
  USAGE_KIND_RESOLVE: ["resolve"],
} as const;

/** The filterable fields of ListUsageEvents (the contract's list). */
const USAGE_EVENT_FIELDS: FilterFields = {
  kind: { type: "enum", column: "kind", values: KIND_FILTER_VALUES },
  entity_id: { type: "uuid", column: "entity_id" },
  user_id: { type: "uuid", column: "user_id" },
  model: { type: "string", column: "model", prefix: true },
  label: { type: "string", column: "label" },
  request_id: { type: "string", column: "request_id" },
};

/** The longest range ListUsageEvents reads (the contract's 31 days). */
export const MAX_LIST_RANGE_MS = 31 * 86_400_000;
const CURSOR_MICROS_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;
const CURSOR_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * A page of the caller's tenant's usage events in `[start, end)` (end unset: now), newest first,
 * filtered (AIP-160, platform filter.ts). Any member. INVALID_ARGUMENT for a range that is empty or
 * longer than 31 days (`end_time`), a bad filter or page token.
 */
export async function listUsageEvents(
  db: Knex,
  caller: CallerContext,
  q: { start: Date; end: Date | undefined; filter: string; pageSize: number; pageToken: string },
  now: Date = new Date(),
): Promise<{ events: StoredUsageEvent[]; nextPageToken: string }> {
  const end = q.end ?? now;
  if (end <= q.start) throw new InvalidArgumentError({ field: "end_time", description: "must be after start_time" });
  if (end.getTime() - q.start.getTime() > MAX_LIST_RANGE_MS) throw new InvalidArgumentError({ field: "end_time", description: "must be at most 31 days after start_time" });
  const filter = parseFilter(q.filter, USAGE_EVENT_FIELDS);
  // An unset end is "now" at each page: the token binds the range as the first page saw it.
  const params = { t: caller.tenantId, f: q.filter, s: q.start.toISOString(), e: q.end?.toISOString() ?? "" };
  const limit = pageSizeOf(q.pageSize, 100);
  const c = decodePageCursor(q.pageToken, params, { t: CURSOR_MICROS_TIME, id: CURSOR_UUID });
  const rows = await withTenant(db, { service: "analytics", tenantId: caller.tenantId, userId: caller.userId, signal: caller.signal }, (trx) =>
    listStoredUsageEvents(trx, caller.tenantId, {
      start: q.start,
      end,
      where: filter && filterSql(filter, USAGE_EVENT_FIELDS),
      after: c ? { time: c.t, id: c.id } : null,
      limit: limit + 1,
    }),
  );
  const { page, nextPageToken } = pageOf(rows, limit, params, (last) => ({ t: last.cursorTime, id: last.id }));
  return { events: page, nextPageToken };
}

/** How long after its end a billing period may still receive late events (the contract: 48 hours). */
export const BILLING_CLOSE_MS = 48 * 3_600_000;

export interface BillingSummary {
  tenantId: string;
  period: string;
  start: Date;
  end: Date;
  plan: string;
  /** One per kind and model, by descending cost. */
  lines: { kind: string; model: string; figures: UsageFigures }[];
  totals: UsageFigures;
  final: boolean;
  freshness: Date;
}

const PERIOD = /^(\d{4})-(0[1-9]|1[0-2])$/;

/**
 * What the caller's tenant consumed in the calendar month `period` (`YYYY-MM`, UTC; empty: the
 * current month), per kind and model, from the rollups plus the tail. Admin.
 */
export async function getBillingSummary(db: Knex, caller: CallerContext, period: string, now: Date = new Date()): Promise<BillingSummary> {
  requireCallerRole(caller, "admin");
  const m = PERIOD.exec(period);
  if (period !== "" && !m) throw new InvalidArgumentError({ field: "billing_period", description: "must be YYYY-MM" });
  const start = m ? new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, 1)) : slotStart(now, "month");
  const end = slotEnd(start, "month");
  const { rows, plan } = await withTenant(db, { service: "analytics", tenantId: caller.tenantId, userId: caller.userId, signal: caller.signal }, async (trx) => ({
    rows: await usageSummary(trx, caller.tenantId, { start, end, granularity: "month", groupBy: ["kind", "model"], kinds: [], entityId: null, userId: null }),
    plan: await tenantPlan(trx, caller.tenantId),
  }));
  const lines = rows
    .filter((r) => r.slot !== null)
    .map((r) => ({ kind: r.kind ?? "", model: r.model ?? "", figures: figuresOf(r) }))
    .sort((a, b) => (b.figures.costMicros > a.figures.costMicros ? 1 : b.figures.costMicros < a.figures.costMicros ? -1 : 0));
  const totalsRow = rows.find((r) => r.slot === null);
  return {
    tenantId: caller.tenantId,
    period: `${start.getUTCFullYear()}-${String(start.getUTCMonth() + 1).padStart(2, "0")}`,
    start,
    end,
    plan,
    lines,
    totals: totalsRow && totalsRow.eventCount > 0n ? figuresOf(totalsRow) : EMPTY_FIGURES,
    final: now.getTime() >= end.getTime() + BILLING_CLOSE_MS,
    freshness: now,
  };
}
