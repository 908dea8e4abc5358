import type { Knex } from "@promptcraft/db";

/**
 * The read models (`entity_stats`, `tenant_usage_summary`: materialized views across tenants) and
 * their freshness (`read_model_refresh`). Refreshing goes through `refresh_read_model`, SECURITY
 * DEFINER (REFRESH needs the views' owner), which takes advisory lock {@link READ_MODEL_LOCK_KEY}
 * with a try and answers `skipped` when another session holds it.
 */

export const READ_MODEL_LOCK_KEY = 7243002;

export interface ReadModelRow {
  name: string;
  lastStartedAt: Date | null;
  lastRefreshedAt: Date | null;
  lastDurationMs: number | null;
  lastRowCount: number | null;
  lastError: string;
  lastErrorAt: Date | null;
}

export async function readModels(trx: Knex.Transaction): Promise<ReadModelRow[]> {
  const { rows } = await trx.raw<{ rows: Record<string, unknown>[] }>(
    `select view_name, last_started_at, last_refreshed_at, last_duration_ms, last_row_count, last_error, last_error_at
     from read_model_refresh order by view_name`,
  );
  return rows.map((r) => ({
    name: r.view_name as string,
    lastStartedAt: (r.last_started_at as Date | null) ?? null,
    lastRefreshedAt: (r.last_refreshed_at as Date | null) ?? null,
    lastDurationMs: r.last_duration_ms === null ? null : Number(r.last_duration_ms),
    lastRowCount: r.last_row_count === null ? null : Number(r.last_row_count),
    lastError: r.last_error as string,
    lastErrorAt: (r.last_error_at as Date | null) ?? null,
  }));
}

/** Whether some session (any replica) holds the refresh lock right now. */
export async function refreshRunning(trx: Knex.Transaction): Promise<boolean> {
  const { rows } = await trx.raw<{ rows: { held: boolean }[] }>(
    `select exists (select 1 from pg_locks
                    where locktype = 'advisory' and classid = 0 and objid = ? and objsubid = 1 and granted) as held`,
    [READ_MODEL_LOCK_KEY],
  );
  return rows[0]!.held;
}

/** Refreshes one read model (or both: `name` null), concurrently; `skipped` when another session refreshes. */
export async function refresh(trx: Knex.Transaction, name: string | null): Promise<{ name: string; status: "refreshed" | "skipped" }[]> {
  const { rows } = await trx.raw<{ rows: { view_name: string; status: "refreshed" | "skipped" }[] }>(
    "select view_name, status from refresh_read_model(?, true)",
    [name],
  );
  return rows.map((r) => ({ name: r.view_name, status: r.status }));
}

/** Records a failed refresh (its own transaction: the failed one rolled back). */
export async function recordFailure(trx: Knex.Transaction, name: string | null, at: Date, error: string): Promise<void> {
  await trx.raw(
    `update read_model_refresh set last_error = ?, last_error_at = ?
     where ?::text is null or view_name = ?`,
    [error.slice(0, 2000), at, name, name],
  );
}

/** Clears the recorded error after a successful refresh. */
export async function clearFailure(trx: Knex.Transaction, name: string | null): Promise<void> {
  await trx.raw(
    `update read_model_refresh set last_error = '', last_error_at = null
     where (?::text is null or view_name = ?) and last_error <> ''`,
    [name, name],
  );
}
