import { withServiceRole, type Knex } from "@promptcraft/db";
import { startIntervalJob, type IntervalJob } from "@promptcraft/platform";
import type { Logger } from "pino";
import * as store from "../store/read-models.js";
import { ignoreInProgress, inProgress, isInProgress } from "./schedule.js";

/**
 * The read models of brief §4.10, `entity_stats` and `tenant_usage_summary`: materialized views
 * across tenants, each recomputed in full by every refresh (`REFRESH MATERIALIZED VIEW CONCURRENTLY`
 * reruns the whole query, then swaps the changed rows in without blocking readers). They are kept
 * for what the seed names; usage questions that must stay fast and exact are answered from the
 * incremental rollups instead. One refresher at a time among replicas: `refresh_read_model` takes an
 * advisory lock with a try; the others answer REFRESH_IN_PROGRESS (the running refresh is as fresh).
 */

export const READ_MODELS = ["entity_stats", "tenant_usage_summary"] as const;
export type ReadModelName = (typeof READ_MODELS)[number];

export type ReadModelState = "fresh" | "refreshing" | "failed" | "never_refreshed";

export interface ReadModelInfo {
  name: string;
  state: ReadModelState;
  /** When the last successful refresh ended. */
  lastRefreshedAt: Date | null;
  lastDurationMs: number | null;
  /** Age of the data: now − the start of the last successful refresh (its snapshot). */
  stalenessMs: number | null;
  refreshIntervalMs: number;
  nextRefreshAt: Date | null;
  lastError: string;
  rowCount: number;
}

async function readInfo(trx: Knex.Transaction, now: Date, intervalMs: number): Promise<ReadModelInfo[]> {
  const [rows, refreshing] = [await store.readModels(trx), await store.refreshRunning(trx)];
  return rows.map((r) => ({
    name: r.name,
    state: refreshing
      ? "refreshing"
      : r.lastError !== "" && (r.lastRefreshedAt === null || (r.lastErrorAt !== null && r.lastErrorAt > r.lastRefreshedAt))
        ? "failed"
        : r.lastRefreshedAt === null
          ? "never_refreshed"
          : "fresh",
    lastRefreshedAt: r.lastRefreshedAt,
    lastDurationMs: r.lastDurationMs,
    stalenessMs: r.lastStartedAt ? Math.max(0, now.getTime() - r.lastStartedAt.getTime()) : null,
    refreshIntervalMs: intervalMs,
    nextRefreshAt: r.lastRefreshedAt ? new Date(r.lastRefreshedAt.getTime() + intervalMs) : null,
    lastError: r.lastError,
    rowCount: r.lastRowCount ?? 0,
  }));
}

/** Every read model with its freshness. */
export async function listReadModels(db: Knex, now: Date, intervalMs: number): Promise<ReadModelInfo[]> {
  return withServiceRole(db, "analytics", (trx) => readInfo(trx, now, intervalMs));
}

/**
 * Refreshes `name` (both when null) now, concurrently; ABORTED (REFRESH_IN_PROGRESS) when another
 * replica refreshes. A failure is recorded (the read model keeps its last data) and rethrown.
 */
export async function refreshReadModels(db: Knex, name: ReadModelName | null, intervalMs: number): Promise<ReadModelInfo[]> {
  try {
    return await withServiceRole(db, "analytics", async (trx) => {
      const results = await store.refresh(trx, name);
      if (results.some((r) => r.status === "skipped")) {
        throw inProgress("a read-model refresh");
      }
      await store.clearFailure(trx, name);
      const infos = await readInfo(trx, new Date(), intervalMs);
      // This transaction holds the lock until it commits: the refresh it reports is over.
      return infos.filter((i) => name === null || i.name === name).map((i) => (i.state === "refreshing" ? { ...i, state: "fresh" as const } : i));
    });
  } catch (err) {
    if (!isInProgress(err)) {
      const message = err instanceof Error ? err.message : String(err);
      await withServiceRole(db, "analytics", (trx) => store.recordFailure(trx, name, new Date(), message)).catch(() => undefined);
    }
    throw err;
  }
}

/** The scheduled refresher: both read models at start and every `intervalMs`, on one replica at a time. */
export function startReadModelRefresh(db: Knex, intervalMs: number, log: Logger): IntervalJob {
  return startIntervalJob("read-model refresh", intervalMs, () => refreshReadModels(db, null, intervalMs).then(() => undefined, ignoreInProgress), log, { atStart: true });
}
