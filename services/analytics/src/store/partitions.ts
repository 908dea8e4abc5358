import type { Knex } from "@promptcraft/db";

/**
 * Partition maintenance of the time-partitioned tables (`event` by month, `usage_event` by day):
 * the policies (`partition_policy`), the partitions as the catalog has them, the run itself
 * (`run_partition_maintenance`, SECURITY DEFINER: partition DDL needs the tables' owner) and its
 * recorded outcome (`partition_maintenance_run`). Not tenant data: no tenant_id anywhere here.
 */

/** Advisory lock key of partition maintenance; `run_partition_maintenance` takes the same one. */
export const PARTITION_MAINTENANCE_LOCK_KEY = 7243001;

export interface PartitionPolicyRow {
  parentTable: string;
  granularity: "day" | "month";
  premake: number;
  premakeBehind: number;
  /** Retention in days (whole days; null = keep forever). */
  retentionDays: number | null;
  retentionAction: "drop" | "detach";
  /** Who maintains the table's partitions (`partition_engine()`). */
  engine: "pg_partman" | "built_in";
  /** pg_partman's version when it maintains the table, else "". */
  engineVersion: string;
  lastSuccessAt: Date | null;
  lastError: string;
}

export interface PartitionRow {
  parentTable: string;
  name: string;
  attached: boolean;
  rowEstimate: number;
  sizeBytes: number;
}

export interface MaintenanceAction {
  parentTable: string;
  action: "created" | "dropped" | "detached";
  partitionName: string;
}

/** One maintainer among replicas: a transaction-scoped advisory lock; false if another holds it. */
export async function tryMaintenanceLock(trx: Knex.Transaction): Promise<boolean> {
  const { rows } = await trx.raw<{ rows: { locked: boolean }[] }>("select pg_try_advisory_xact_lock(?) as locked", [PARTITION_MAINTENANCE_LOCK_KEY]);
  return rows[0]!.locked;
}

/**
 * Bounds how long the partition DDL queues for its table locks: a queued lock request on the parent
 * would make every insert behind it wait, so maintenance gives up (and retries next round) instead.
 */
export async function limitLockWait(trx: Knex.Transaction, ms: number): Promise<void> {
  await trx.raw("select set_config('lock_timeout', ?, true)", [`${ms}ms`]);
}

export async function policies(trx: Knex.Transaction): Promise<PartitionPolicyRow[]> {
  const { rows } = await trx.raw<{ rows: Record<string, unknown>[] }>(
    `select p.parent_table, p.granularity, p.premake, p.premake_behind,
            extract(epoch from p.retention)::float8 / 86400 as retention_days, p.retention_action,
            r.last_success_at, coalesce(r.last_error, '') as last_error, partition_engine(p.parent_table) as engine,
            coalesce((select e.extversion from pg_extension e where e.extname = 'pg_partman'), '') as partman_version
     from partition_policy p
     left join partition_maintenance_run r on r.parent_table = p.parent_table
     order by p.parent_table`,
  );
  return rows.map((r) => ({
    parentTable: r.parent_table as string,
    granularity: r.granularity as "day" | "month",
    premake: Number(r.premake),
    premakeBehind: Number(r.premake_behind),
    retentionDays: r.retention_days === null ? null : Number(r.retention_days),
    retentionAction: r.retention_action as "drop" | "detach",
    engine: r.engine as "pg_partman" | "built_in",
    engineVersion: r.engine === "pg_partman" ? (r.partman_version as string) : "",
    lastSuccessAt: (r.last_success_at as Date | null) ?? null,
    lastError: r.last_error as string,
  }));
}

/**
 * The partitions of every policy's table, attached or detached (a detached partition keeps its name
 * and loses its bounds: the domain reads the range from the name). Names: the built-in maintainer's
 * `<parent>_YYYY_MM[_DD]`, pg_partman's `<parent>_pYYYY_MM[_DD]` (4.x) or `<parent>_pYYYYMMDD` (5.x).
 */
export async function partitions(trx: Knex.Transaction): Promise<PartitionRow[]> {
  const { rows } = await trx.raw<{ rows: Record<string, unknown>[] }>(
    `select p.parent_table, c.relname as name, (i.inhrelid is not null) as attached,
            greatest(c.reltuples, 0)::float8 as row_estimate, pg_total_relation_size(c.oid)::float8 as size_bytes
     from partition_policy p
     join pg_class c on c.relkind = 'r'
       and c.relnamespace = 'public'::regnamespace
       -- {0,1} rather than ?, which knex reads as a binding.
       and c.relname ~ ('^' || p.parent_table || '_p{0,1}\\d{4}_{0,1}\\d{2}(_{0,1}\\d{2}){0,1}$')
     left join pg_inherits i on i.inhrelid = c.oid and i.inhparent = format('public.%I', p.parent_table)::regclass
     order by p.parent_table, c.relname`,
  );
  return rows.map((r) => ({
    parentTable: r.parent_table as string,
    name: r.name as string,
    attached: r.attached as boolean,
    rowEstimate: Number(r.row_estimate),
    sizeBytes: Number(r.size_bytes),
  }));
}

/** Creates the partitions ahead/behind and drops or detaches those past retention, as of `now`. */
export async function runMaintenance(trx: Knex.Transaction, now: Date): Promise<MaintenanceAction[]> {
  const { rows } = await trx.raw<{ rows: { parent_table: string; action: MaintenanceAction["action"]; partition_name: string }[] }>(
    "select parent_table, action, partition_name from run_partition_maintenance(null, ?)",
    [now],
  );
  return rows.map((r) => ({ parentTable: r.parent_table, action: r.action, partitionName: r.partition_name }));
}

/** Deletes the idempotency keys of usage events whose partition is gone; returns how many. */
export async function pruneUsageEventIds(trx: Knex.Transaction): Promise<number> {
  const { rows } = await trx.raw<{ rows: { pruned: string }[] }>("select prune_usage_event_ids() as pruned");
  return Number(rows[0]!.pruned);
}

/** Deletes the usage rollups (hourly and daily) of days whose partition is gone; returns how many rows. */
export async function pruneUsageRollups(trx: Knex.Transaction): Promise<number> {
  const { rows } = await trx.raw<{ rows: { pruned: string }[] }>("select prune_usage_rollups() as pruned");
  return Number(rows[0]!.pruned);
}

/** Records a successful run of every policy's table at `at` (clears the last error). */
export async function recordSuccess(trx: Knex.Transaction, at: Date): Promise<void> {
  await trx.raw(
    `insert into partition_maintenance_run (parent_table, last_success_at, last_error)
     select parent_table, ?, '' from partition_policy
     on conflict (parent_table) do update set last_success_at = excluded.last_success_at, last_error = ''`,
    [at],
  );
}

/** Records a failed run of every policy's table at `at`. */
export async function recordFailure(trx: Knex.Transaction, at: Date, error: string): Promise<void> {
  await trx.raw(
    `insert into partition_maintenance_run (parent_table, last_error_at, last_error)
     select parent_table, ?, ? from partition_policy
     on conflict (parent_table) do update set last_error_at = excluded.last_error_at, last_error = excluded.last_error`,
    [at, error.slice(0, 2000)],
  );
}

/** The last position of an attached `event` partition holding rows, and the end of its range. */
export interface EventPartitionEnd {
  partitionName: string;
  transactionId: bigint;
  id: bigint;
  rangeEnd: Date;
}

/** The last `(transaction_id, id)` of each attached `event` partition holding rows (`event_partition_ends()`). */
export async function eventPartitionEnds(trx: Knex.Transaction): Promise<EventPartitionEnd[]> {
  const { rows } = await trx.raw<{ rows: { partition_name: string; transaction_id: string; id: string; range_end: Date }[] }>(
    "select partition_name, transaction_id::text as transaction_id, id::text as id, range_end from event_partition_ends()",
  );
  return rows.map((r) => ({ partitionName: r.partition_name, transactionId: BigInt(r.transaction_id), id: BigInt(r.id), rangeEnd: new Date(r.range_end.getTime()) }));
}

/**
 * Records that the events up to `end` (a dropped or detached partition's last position) are gone:
 * `event_log_expiry` keeps the greatest position and range end ever recorded.
 */
export async function recordEventLogExpiry(trx: Knex.Transaction, end: EventPartitionEnd, at: Date): Promise<void> {
  await trx.raw(
    `insert into event_log_expiry as x (transaction_id, id, occurred_before, partition_name, expired_at)
     values (?::xid8, ?::bigint, ?, ?, ?)
     on conflict (log) do update set
       transaction_id = case when (excluded.transaction_id, excluded.id) > (x.transaction_id, x.id) then excluded.transaction_id else x.transaction_id end,
       id = case when (excluded.transaction_id, excluded.id) > (x.transaction_id, x.id) then excluded.id else x.id end,
       occurred_before = greatest(x.occurred_before, excluded.occurred_before),
       partition_name = excluded.partition_name,
       expired_at = excluded.expired_at`,
    [String(end.transactionId), String(end.id), end.rangeEnd, end.partitionName, at],
  );
}
