import { withServiceRole, type Knex } from "@promptcraft/db";
import { AbortedError, compareCursors, startIntervalJob, type IntervalJob } from "@promptcraft/platform";
import type { Logger } from "pino";
import * as store from "../store/partitions.js";
import { ignoreInProgress, inProgress, isInProgress } from "./schedule.js";

/**
 * Partition maintenance (brief §4.7): `event` by month, `usage_event` by day, created ahead (and a
 * few behind, for late arrivals) and dropped or detached past retention, as `partition_policy` says —
 * by pg_partman when the PostgreSQL server has it (migration 20261207030100_pg_partman), else by the
 * built-in maintainer; the same round either way (`run_partition_maintenance` dispatches per table).
 * One maintainer at a time among replicas (a transaction-scoped advisory lock: a second run at the
 * same moment is refused, never queued); the partition DDL waits at most `lockWaitMs` for its table
 * locks, so ingest is never stuck behind maintenance (a busy round fails and the next one retries).
 * The work itself is `run_partition_maintenance` in the database; a dry run is that same run rolled
 * back, so it reports exactly what a real run would do.
 */

/** How long partition DDL may queue for a table lock before the round gives up. */
export const MAINTENANCE_LOCK_WAIT_MS = 2000;

export type RetentionAction = "drop" | "detach" | "keep";

export interface PartitionInfo {
  name: string;
  start: Date;
  end: Date;
  attached: boolean;
  rowEstimate: number;
  sizeBytes: number;
}

export interface PartitionedTableStatus {
  table: string;
  /** Who maintains its partitions: pg_partman (PostgreSQL with the extension) or the built-in maintainer. */
  engine: "pg_partman" | "built_in";
  /** pg_partman's version when it maintains the table, else "". */
  engineVersion: string;
  granularity: "day" | "month";
  premake: number;
  /** Attached partitions that start after `now`. */
  futureCount: number;
  retentionDays: number | null;
  retentionAction: RetentionAction;
  /** Oldest first. */
  partitions: PartitionInfo[];
  lastMaintenanceAt: Date | null;
  nextMaintenanceAt: Date | null;
  lastError: string;
}

export interface MaintenanceResult {
  created: string[];
  dropped: string[];
  detached: string[];
  /** Idempotency keys of usage events deleted with their partitions (`usage_event_id`). */
  prunedEventIds: number;
  /** Usage rollup rows (hourly and daily) deleted with their days' partitions. */
  prunedRollupRows: number;
  tables: PartitionedTableStatus[];
}

/**
 * The range a partition covers, from its name (UTC): the built-in maintainer's `<parent>_YYYY_MM` or
 * `<parent>_YYYY_MM_DD`, pg_partman 4.x's `<parent>_pYYYY_MM[_DD]`, 5.x's `<parent>_pYYYYMMDD`.
 */
export function partitionRange(name: string, parent: string, granularity: "day" | "month"): { start: Date; end: Date } {
  const digits = name.slice(parent.length + 1).replace(/\D/g, "");
  const [y, m, d] = [Number(digits.slice(0, 4)), Number(digits.slice(4, 6)), digits.length >= 8 ? Number(digits.slice(6, 8)) : 1];
  const start = new Date(Date.UTC(y, m - 1, granularity === "day" ? d : 1));
  const end = granularity === "day" ? new Date(Date.UTC(y, m - 1, d + 1)) : new Date(Date.UTC(y, m, 1));
  return { start, end };
}

/** Every partitioned table's policy, partitions and last maintenance, as of `now`. */
export async function partitionStatus(db: Knex, now: Date, intervalMs: number): Promise<PartitionedTableStatus[]> {
  return withServiceRole(db, "analytics", (trx) => readStatus(trx, now, intervalMs));
}

async function readStatus(trx: Knex.Transaction, now: Date, intervalMs: number): Promise<PartitionedTableStatus[]> {
  const [policies, parts] = [await store.policies(trx), await store.partitions(trx)];
  return policies.map((p) => {
    const partitions = parts
      .filter((r) => r.parentTable === p.parentTable)
      .map((r) => ({ name: r.name, ...partitionRange(r.name, p.parentTable, p.granularity), attached: r.attached, rowEstimate: r.rowEstimate, sizeBytes: r.sizeBytes }))
      .sort((a, b) => a.start.getTime() - b.start.getTime());
    return {
      table: p.parentTable,
      engine: p.engine,
      engineVersion: p.engineVersion,
      granularity: p.granularity,
      premake: p.premake,
      futureCount: partitions.filter((x) => x.attached && x.start > now).length,
      retentionDays: p.retentionDays,
      retentionAction: p.retentionDays === null ? "keep" : p.retentionAction,
      partitions,
      lastMaintenanceAt: p.lastSuccessAt,
      nextMaintenanceAt: p.lastSuccessAt ? new Date(p.lastSuccessAt.getTime() + intervalMs) : null,
      lastError: p.lastError,
    };
  });
}

/** Carries a dry run's result out of its transaction, which is then rolled back. */
class DryRunRollback extends Error {
  constructor(readonly result: MaintenanceResult) {
    super("dry run");
  }
}

/**
 * One maintenance run as of `now`: ABORTED (REFRESH_IN_PROGRESS) when another replica or call is
 * running it, ABORTED (CONCURRENT_MODIFICATION) when a table stayed locked longer than
 * `lockWaitMs`. A real run records its outcome for the status; a dry run changes nothing.
 */
export async function runPartitionMaintenance(
  db: Knex,
  options: { dryRun: boolean; now: Date; intervalMs: number; lockWaitMs?: number },
): Promise<MaintenanceResult> {
  try {
    return await withServiceRole(db, "analytics", async (trx) => {
      if (!(await store.tryMaintenanceLock(trx))) {
        throw inProgress("partition maintenance");
      }
      await store.limitLockWait(trx, options.lockWaitMs ?? MAINTENANCE_LOCK_WAIT_MS);
      const { actions, prunedEventIds, prunedRollupRows } = await maintainLocked(trx, options.now);
      const names = (action: store.MaintenanceAction["action"]) => actions.filter((a) => a.action === action).map((a) => a.partitionName);
      if (options.dryRun) {
        // The status as it is, not as the rolled-back run left it.
        throw new DryRunRollback({ created: names("created"), dropped: names("dropped"), detached: names("detached"), prunedEventIds, prunedRollupRows, tables: [] });
      }
      await store.recordSuccess(trx, options.now);
      return {
        created: names("created"),
        dropped: names("dropped"),
        detached: names("detached"),
        prunedEventIds,
        prunedRollupRows,
        tables: await readStatus(trx, options.now, options.intervalMs),
      };
    });
  } catch (err) {
    if (err instanceof DryRunRollback) return { ...err.result, tables: await partitionStatus(db, options.now, options.intervalMs) };
    if (!isInProgress(err) && !options.dryRun) {
      await withServiceRole(db, "analytics", (trx) => store.recordFailure(trx, options.now, errorText(err))).catch(() => undefined);
    }
    throw err;
  }
}

/**
 * The work of a run, in the caller's transaction (which holds the maintenance lock, as analytics):
 * partitions made and dropped or detached, and with them what depended on them.
 */
export async function maintainLocked(
  trx: Knex.Transaction,
  now: Date,
): Promise<{ actions: store.MaintenanceAction[]; prunedEventIds: number; prunedRollupRows: number }> {
  // Read before the run: a dropped partition's last position is gone with it.
  const eventEnds = await store.eventPartitionEnds(trx);
  const actions = await runLocked(trx, now);
  await recordExpiredEvents(trx, eventEnds, actions, now);
  // With its day's partition goes the proof that an event id was stored.
  const prunedEventIds = await store.pruneUsageEventIds(trx);
  // And its rollups: a summary never counts events the table no longer holds.
  const prunedRollupRows = await store.pruneUsageRollups(trx);
  return { actions, prunedEventIds, prunedRollupRows };
}

/**
 * Records the last position of the `event` partitions the run dropped or detached, so that a cursor
 * from before it answers CURSOR_EXPIRED rather than silently passing the events that went.
 */
async function recordExpiredEvents(trx: Knex.Transaction, ends: store.EventPartitionEnd[], actions: store.MaintenanceAction[], now: Date): Promise<void> {
  const gone = new Set(actions.filter((a) => a.parentTable === "event" && a.action !== "created").map((a) => a.partitionName));
  const expired = ends.filter((e) => gone.has(e.partitionName));
  if (expired.length === 0) return;
  const last = expired.reduce((a, b) => (compareCursors(a, b) >= 0 ? a : b));
  const rangeEnd = new Date(Math.max(...expired.map((e) => e.rangeEnd.getTime())));
  await store.recordEventLogExpiry(trx, { ...last, rangeEnd }, now);
}

async function runLocked(trx: Knex.Transaction, now: Date): Promise<store.MaintenanceAction[]> {
  try {
    return await store.runMaintenance(trx, now);
  } catch (err) {
    if ((err as { code?: string }).code === "55P03") {
      throw new AbortedError("a partitioned table stayed locked; partition maintenance gave way and will retry", { cause: err });
    }
    throw err;
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * The scheduled maintainer: a round at start (partitions must exist before the first ingest of a new
 * day, whatever the replica's uptime) and every `intervalMs` after. A round another replica holds is
 * skipped quietly; a failed round is logged and recorded, and the next one retries.
 */
export function startPartitionMaintenance(db: Knex, intervalMs: number, log: Logger): IntervalJob {
  return startIntervalJob(
    "partition maintenance",
    intervalMs,
    () =>
      runPartitionMaintenance(db, { dryRun: false, now: new Date(), intervalMs }).then(
        (r) => {
          if (r.created.length + r.dropped.length + r.detached.length > 0) {
            log.info({ created: r.created, dropped: r.dropped, detached: r.detached, pruned_event_ids: r.prunedEventIds, pruned_rollup_rows: r.prunedRollupRows }, "partition maintenance");
          }
        },
        ignoreInProgress,
      ),
    log,
    { atStart: true },
  );
}
