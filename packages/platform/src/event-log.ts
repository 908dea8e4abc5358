import { randomUUID } from "node:crypto";
import { withServiceRole, withTenant, type Knex, type ServiceName } from "@promptcraft/db";
import client from "prom-client";
import type { Logger } from "pino";

/**
 * The event-log reader (brief §4.6, §11): follows the shared `event` table in commit order, for
 * analytics' audit tail and for the projections of graph and search.
 *
 * Why not `order by id`: ids come from a sequence at insert time, commits happen later and in any
 * order, so a reader that has passed id 12 may later see id 11 commit — and skip it forever. This
 * reader orders by `(transaction_id, id)` and reads only rows whose writer's transaction is below
 * `event_log_horizon()`, the oldest transaction still running in this database (core migration
 * 20261207060000): every writer below it has ended, so nothing can ever appear behind the cursor.
 * The price is that one long-running transaction of this database (of any service) holds delivery
 * of everything written after it began; transactions of other databases on the server do not.
 *
 * The cursor is always the pair `(transaction_id, id)` ({@link EventCursor}, text `"<xid8>-<id>"`).
 *
 * Three layers, use the one you need:
 * - {@link readEvents}: one batch after a cursor (all tenants, through `read_event_log`; or one
 *   tenant, through `event` under row-level security — analytics only has SELECT on it).
 * - {@link followEvents}: an async iterator of batches after a cursor, short-polling while idle, until
 *   its AbortSignal aborts. No checkpoint (a client-held cursor: the audit tail).
 * - {@link runEventConsumer}: a named, durable consumer: checkpoint in `event_consumer`, one active
 *   replica per name (a lease row), at-least-once delivery to an idempotent handler, lag metrics.
 */

/** A position in the log: right after the event with this transaction id and id. */
export interface EventCursor {
  transactionId: bigint;
  id: bigint;
}

/** The start of the log. */
export const LOG_START: EventCursor = { transactionId: 0n, id: 0n };

/** One event of the log, as readers receive it. */
export interface LogEvent {
  tenantId: string;
  id: bigint;
  transactionId: bigint;
  occurredAt: Date;
  aggregateType: string;
  aggregateId: string | null;
  aggregateVersion: bigint | null;
  eventType: string;
  payload: Record<string, unknown>;
  actorType: string;
  actorId: string | null;
  requestId: string | null;
  /** Database role that appended it (`promptcraft_content`…). */
  recordedBy: string;
}

/** One read: the events in commit order, and the cursor to continue from. */
export interface EventBatch {
  events: LogEvent[];
  /**
   * Where the next read starts: the last event's position, or — when the read found nothing more —
   * the horizon (`(xmin, 0)`): no event can ever commit below it, so the cursor may jump there.
   */
  next: EventCursor;
}

const CURSOR_TEXT = /^(\d{1,20})-(\d{1,20})$/;
const MAX_BIGINT = (1n << 63n) - 1n;

/** The text form of a cursor, `"<transaction_id>-<id>"`. */
export function formatCursor(cursor: EventCursor): string {
  return `${cursor.transactionId}-${cursor.id}`;
}

/** Parses {@link formatCursor}'s text; undefined if it is not one. */
export function parseCursor(text: string): EventCursor | undefined {
  const m = CURSOR_TEXT.exec(text);
  if (!m) return undefined;
  const cursor = { transactionId: BigInt(m[1]!), id: BigInt(m[2]!) };
  return cursor.transactionId <= MAX_BIGINT && cursor.id <= MAX_BIGINT ? cursor : undefined;
}

/** -1, 0, 1 as `a` is before, at or after `b` in commit order. */
export function compareCursors(a: EventCursor, b: EventCursor): number {
  if (a.transactionId !== b.transactionId) return a.transactionId < b.transactionId ? -1 : 1;
  return a.id === b.id ? 0 : a.id < b.id ? -1 : 1;
}

/** What to read. */
export interface ReadOptions {
  db: Knex;
  /** The reading service (its database role). */
  service: ServiceName;
  /** Read one tenant's events under row-level security (needs SELECT on `event`: analytics); default all tenants. */
  tenantId?: string;
  /** Most events per read (default 500, at most 10000). */
  batchSize?: number;
  signal?: AbortSignal;
}

/** A row of `event` as `pg` returns it (the ids of a horizon-only row of `read_event_log` are null). */
export interface EventLogRow {
  tenant_id: string | null;
  id: string | null;
  transaction_id: string | null;
  occurred_at: Date | null;
  aggregate_type: string;
  aggregate_id: string | null;
  aggregate_version: string | null;
  event_type: string;
  payload: Record<string, unknown>;
  actor_type: string;
  actor_id: string | null;
  request_id: string | null;
  recorded_by: string;
}

type EventRow = EventLogRow & { horizon: string };

/** The columns of {@link EventLogRow}, for stores that read `event` themselves. */
export const EVENT_LOG_COLUMNS = `tenant_id, id, transaction_id, occurred_at, aggregate_type, aggregate_id, aggregate_version,
  event_type, payload, actor_type, actor_id, request_id, recorded_by`;

/** The events after `after` in commit order, below the oldest running transaction. */
export async function readEvents(options: ReadOptions, after: EventCursor): Promise<EventBatch> {
  const limit = Math.min(Math.max(options.batchSize ?? 500, 1), 10_000);
  const args = [String(after.transactionId), String(after.id), limit];
  const rows = options.tenantId
    ? await withTenant(options.db, { service: options.service, tenantId: options.tenantId, signal: options.signal }, async (trx) => {
        const tenant = options.tenantId!;
        // The horizon is read in the same statement (one snapshot) as the rows; the left join
        // returns it even when no row qualifies.
        const { rows } = await trx.raw<{ rows: EventRow[] }>(
          `with h as (select event_log_horizon() as horizon)
           select e.*, h.horizon from h left join lateral (
             select ${EVENT_LOG_COLUMNS} from event
             where tenant_id = ? and transaction_id < h.horizon and (transaction_id, id) > (?::xid8, ?::bigint)
             order by transaction_id, id limit ?
           ) e on true
           order by e.transaction_id, e.id`,
          [tenant, ...args],
        );
        return rows;
      })
    : await withServiceRole(
        options.db,
        options.service,
        async (trx) => (await trx.raw<{ rows: EventRow[] }>(`select ${EVENT_LOG_COLUMNS}, horizon from read_event_log(?::xid8, ?::bigint, ?)`, args)).rows,
        { signal: options.signal },
      );
  const events = rows.filter((r) => r.id !== null).map(logEventOfRow);
  const last = events[events.length - 1];
  if (last) return { events, next: { transactionId: last.transactionId, id: last.id } };
  const horizon: EventCursor = { transactionId: BigInt(rows[0]?.horizon ?? "0"), id: 0n };
  return { events, next: compareCursors(horizon, after) > 0 ? horizon : after };
}

/** A read row as a {@link LogEvent}. */
export function logEventOfRow(r: EventLogRow): LogEvent {
  return {
    tenantId: r.tenant_id!,
    id: BigInt(r.id!),
    transactionId: BigInt(r.transaction_id!),
    occurredAt: r.occurred_at!,
    aggregateType: r.aggregate_type,
    aggregateId: r.aggregate_id,
    aggregateVersion: r.aggregate_version === null ? null : BigInt(r.aggregate_version),
    eventType: r.event_type,
    payload: r.payload,
    actorType: r.actor_type,
    actorId: r.actor_id,
    requestId: r.request_id,
    recordedBy: r.recorded_by,
  };
}

/**
 * Where to start a tenant's tail from a time: right before the smallest transaction that wrote one of
 * its events at or after `time` (events carry their transaction's start time, and a transaction
 * that started later may hold a smaller id, hence `min`), or the end of the log if there is none.
 * A few older events of transactions in between may follow; callers drop them by `occurredAt`.
 */
export async function cursorAtTime(options: ReadOptions & { tenantId: string }, time: Date): Promise<EventCursor> {
  const tx = await withTenant(options.db, { service: options.service, tenantId: options.tenantId, signal: options.signal }, async (trx) => {
    const { rows } = await trx.raw<{ rows: { transaction_id: string | null }[] }>(
      "select min(transaction_id)::text as transaction_id from event where tenant_id = ? and occurred_at >= ?",
      [options.tenantId, time.toISOString()],
    );
    return rows[0]?.transaction_id ?? null;
  });
  return tx === null ? logEnd(options) : { transactionId: BigInt(tx) - 1n, id: MAX_BIGINT };
}

/** The current end of the log: the horizon, after which only future commits can appear. */
export async function logEnd(options: ReadOptions): Promise<EventCursor> {
  const { rows } = await withServiceRole(options.db, options.service, (trx) =>
    trx.raw<{ rows: { horizon: string }[] }>("select event_log_horizon()::text as horizon"),
    { signal: options.signal },
  );
  return { transactionId: BigInt(rows[0]!.horizon), id: 0n };
}

/** Options of {@link followEvents}. */
export interface FollowOptions extends ReadOptions {
  /**
   * Wait between reads that found nothing (default 200 ms). A read that found events is followed
   * at once. Short polling rather than LISTEN/NOTIFY: an event becomes readable when the *oldest*
   * running transaction ends, which may write no event and notify nobody (docs/decisions.md).
   */
  pollIntervalMs?: number;
}

/**
 * Batches after `after`, in commit order, forever: each yielded batch has at least one event, or
 * none when the read was idle (so callers can send heartbeats; `next` may still have moved up to
 * the horizon). Ends when `signal` aborts.
 */
export async function* followEvents(options: FollowOptions, after: EventCursor): AsyncGenerator<EventBatch> {
  let cursor = after;
  const poll = options.pollIntervalMs ?? 200;
  while (!options.signal?.aborted) {
    const batch = await readEvents(options, cursor);
    cursor = batch.next;
    yield batch;
    if (batch.events.length === 0) await sleep(poll, options.signal);
  }
}

/** A durable consumer of the log. */
export interface ConsumerOptions {
  db: Knex;
  service: ServiceName;
  /** Unique name of the consumer (`graph.projection`); its checkpoint and lease are kept under it. */
  name: string;
  /**
   * Receives each batch (at least one event), in commit order. Delivery is at least once: the
   * checkpoint moves only after it resolves, so after a crash or a lost lease the same events may
   * come again — make it idempotent. If it throws, the batch is retried after `retryDelayMs`.
   */
  handle(events: LogEvent[], signal: AbortSignal): Promise<void>;
  batchSize?: number;
  pollIntervalMs?: number;
  /** How long a lease lasts without renewal (default 15 s): the failover time of a dead replica. */
  leaseMs?: number;
  /** Wait after a failed read or handler (default 1 s). */
  retryDelayMs?: number;
  /** Stops the consumer; it releases its lease on the way out. */
  signal: AbortSignal;
  /** Where the lag and delivery metrics go (the service's registry); none if absent. */
  registry?: client.Registry;
  log?: Logger;
  /** This replica's id in the lease (default a random UUID). */
  owner?: string;
}

/** What a running consumer reports (tests, `promptcraft events list`). */
export interface ConsumerState {
  active: boolean;
  checkpoint: EventCursor;
  delivered: number;
}

/**
 * Runs a durable consumer until `options.signal` aborts. Among replicas running the same name,
 * one holds the lease (a row in `event_consumer`) and reads; the others retry taking it every
 * lease/3. Why a lease row, not an advisory lock: a session advisory lock pins one pooled
 * connection for the consumer's life, does not survive transaction-mode poolers (PgBouncer), and
 * on the embedded engine every connection shares one session, so the lock would not exclude
 * anyone. The lease also fences the checkpoint: it only moves `where lease_owner = me`, so a
 * replica that lost its lease while stalled cannot move it back.
 */
export async function runEventConsumer(options: ConsumerOptions, state: ConsumerState = { active: false, checkpoint: LOG_START, delivered: 0 }): Promise<void> {
  const owner = options.owner ?? randomUUID();
  const leaseMs = options.leaseMs ?? 15_000;
  const retry = options.retryDelayMs ?? 1000;
  const metrics = consumerMetrics(options.registry);
  const labels = { consumer: options.name };
  const tx = <T>(work: (trx: Knex.Transaction) => Promise<T>) => withServiceRole(options.db, options.service, work, { signal: options.signal });
  await tx((trx) => trx.raw("insert into event_consumer (name) values (?) on conflict (name) do nothing", [options.name]));
  let leaseRenewedAt = 0;
  try {
    while (!options.signal.aborted) {
      try {
        if (!state.active || Date.now() - leaseRenewedAt > leaseMs / 3) {
          const { rows } = await tx((trx) =>
            trx.raw<{ rows: { transaction_id: string; event_id: string }[] }>(
              `update event_consumer set lease_owner = ?, lease_until = now() + ? * interval '1 millisecond'
               where name = ? and (lease_owner is null or lease_owner = ? or lease_until < now())
               returning transaction_id::text, event_id::text`,
              [owner, leaseMs, options.name, owner],
            ),
          );
          const row = rows[0];
          if (!row) {
            if (state.active) options.log?.warn({ consumer: options.name }, "event consumer: lease lost to another replica");
            state.active = false;
            metrics?.active.set(labels, 0);
            await sleep(leaseMs / 3, options.signal);
            continue;
          }
          if (!state.active) {
            // (Re)taking the lease: start from the durable checkpoint, never from memory.
            state.checkpoint = { transactionId: BigInt(row.transaction_id), id: BigInt(row.event_id) };
            options.log?.info({ consumer: options.name, checkpoint: formatCursor(state.checkpoint) }, "event consumer: active");
          }
          state.active = true;
          leaseRenewedAt = Date.now();
          metrics?.active.set(labels, 1);
        }
        const batch = await readEvents({ db: options.db, service: options.service, batchSize: options.batchSize, signal: options.signal }, state.checkpoint);
        const first = batch.events[0];
        metrics?.lag.set(labels, first ? Math.max(0, (Date.now() - first.occurredAt.getTime()) / 1000) : 0);
        if (first) await options.handle(batch.events, options.signal);
        if (compareCursors(batch.next, state.checkpoint) > 0) {
          // Not cancelled by the stop signal: a handled batch's checkpoint is one quick update, and
          // losing it would only make a restart handle the batch again.
          const { rowCount } = await withServiceRole(options.db, options.service, (trx) =>
            trx.raw<{ rowCount: number }>(
              `update event_consumer set transaction_id = ?::xid8, event_id = ?, updated_at = now(),
                 lease_until = now() + ? * interval '1 millisecond'
               where name = ? and lease_owner = ?`,
              [String(batch.next.transactionId), String(batch.next.id), leaseMs, options.name, owner],
            ),
          );
          if (rowCount === 0) {
            state.active = false;
            continue;
          }
          leaseRenewedAt = Date.now();
          state.checkpoint = batch.next;
          state.delivered += batch.events.length;
          if (first) metrics?.delivered.inc(labels, batch.events.length);
        }
        if (!first) await sleep(options.pollIntervalMs ?? 200, options.signal);
      } catch (err) {
        if (options.signal.aborted) break;
        options.log?.warn({ consumer: options.name, err: (err as Error).message }, "event consumer: read or handler failed; retrying");
        await sleep(retry, options.signal);
      }
    }
  } finally {
    metrics?.active.set(labels, 0);
    if (state.active) {
      state.active = false;
      // Hand the lease over at once instead of letting it expire (the pool may be closing: best effort).
      await withServiceRole(options.db, options.service, (trx) =>
        trx.raw("update event_consumer set lease_owner = null, lease_until = null where name = ? and lease_owner = ?", [options.name, owner]),
      ).catch(() => {});
    }
  }
}

/** A consumer's durable state, as `event_consumer` holds it. */
export interface ConsumerCheckpoint {
  name: string;
  checkpoint: EventCursor;
  leaseOwner: string | null;
  leaseUntil: Date | null;
  updatedAt: Date;
}

/** Every consumer's checkpoint and lease (the CLI's `events list --consumers`). */
export async function listConsumers(db: Knex, service: ServiceName): Promise<ConsumerCheckpoint[]> {
  const rows = await withServiceRole(db, service, (trx) =>
    trx.raw<{ rows: { name: string; transaction_id: string; event_id: string; lease_owner: string | null; lease_until: Date | null; updated_at: Date }[] }>(
      "select name, transaction_id::text, event_id::text, lease_owner, lease_until, updated_at from event_consumer order by name",
    ),
  );
  return rows.rows.map((r) => ({
    name: r.name,
    checkpoint: { transactionId: BigInt(r.transaction_id), id: BigInt(r.event_id) },
    leaseOwner: r.lease_owner,
    leaseUntil: r.lease_until,
    updatedAt: r.updated_at,
  }));
}

/**
 * Moves a consumer's checkpoint to `cursor` (creating the row if needed) so that it re-reads
 * everything after it — a projection rebuilt, or replay for debugging. The active replica picks it
 * up when it next takes its lease: the lease is cleared here, which makes it re-read the checkpoint.
 */
export async function resetConsumer(db: Knex, service: ServiceName, name: string, cursor: EventCursor): Promise<void> {
  await withServiceRole(db, service, (trx) =>
    trx.raw(
      `insert into event_consumer (name, transaction_id, event_id, updated_at) values (?, ?::xid8, ?, now())
       on conflict (name) do update set transaction_id = excluded.transaction_id, event_id = excluded.event_id,
         lease_owner = null, lease_until = null, updated_at = now()`,
      [name, String(cursor.transactionId), String(cursor.id)],
    ),
  );
}

interface ConsumerMetrics {
  lag: client.Gauge<"consumer">;
  active: client.Gauge<"consumer">;
  delivered: client.Counter<"consumer">;
}

const metricsByRegistry = new WeakMap<client.Registry, ConsumerMetrics>();

/** The consumer metrics of a registry, created once per registry (several consumers share them by label). */
function consumerMetrics(registry: client.Registry | undefined): ConsumerMetrics | undefined {
  if (!registry) return undefined;
  let m = metricsByRegistry.get(registry);
  if (!m) {
    m = {
      lag: new client.Gauge({
        name: "event_log_consumer_lag_seconds",
        help: "Age of the oldest event not yet handled at the consumer's last read (0 when caught up).",
        labelNames: ["consumer"],
        registers: [registry],
      }),
      active: new client.Gauge({ name: "event_log_consumer_active", help: "1 while this replica holds the consumer's lease.", labelNames: ["consumer"], registers: [registry] }),
      delivered: new client.Counter({ name: "event_log_consumer_delivered_total", help: "Events handed to the consumer's handler and checkpointed.", labelNames: ["consumer"], registers: [registry] }),
    };
    metricsByRegistry.set(registry, m);
  }
  return m;
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}
