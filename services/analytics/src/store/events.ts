import type { Knex } from "@promptcraft/db";
import { EVENT_LOG_COLUMNS, logEventOfRow, type EventCursor, type EventLogRow, type LogEvent } from "@promptcraft/platform";

/** The audit log (`event`) as analytics reads it for one tenant, under row-level security. */

/** Where a page starts: after this event, in the page's order. */
export type AuditPageAfter = { order: "desc"; occurredAt: string; id: string } | { order: "asc"; transactionId: string; id: string };

/**
 * One page of a tenant's events: newest first by time (`desc`), or oldest first in commit order
 * (`asc`, by `(transaction_id, id)` and only below the oldest running transaction, as the tail reads,
 * so paging forward never passes a late commit). `where` is a condition from the filter, bound.
 */
export async function listEvents(
  trx: Knex.Transaction,
  tenantId: string,
  q: { order: "asc" | "desc"; where: { sql: string; bindings: (string | Date)[] } | undefined; after: AuditPageAfter | null; limit: number },
): Promise<LogEvent[]> {
  const conditions = ["tenant_id = ?"];
  const bindings: Knex.Value[] = [tenantId];
  if (q.where) {
    conditions.push(q.where.sql);
    bindings.push(...q.where.bindings);
  }
  if (q.order === "asc") conditions.push("transaction_id < (select event_log_horizon())");
  if (q.after?.order === "asc") {
    conditions.push("(transaction_id, id) > (?::xid8, ?::bigint)");
    bindings.push(q.after.transactionId, q.after.id);
  } else if (q.after?.order === "desc") {
    conditions.push("(occurred_at, id) < (?::timestamptz, ?::bigint)");
    bindings.push(q.after.occurredAt, q.after.id);
  }
  const orderBy = q.order === "asc" ? "transaction_id, id" : "occurred_at desc, id desc";
  const { rows } = await trx.raw<{ rows: EventLogRow[] }>(
    `select ${EVENT_LOG_COLUMNS} from event where ${conditions.join(" and ")}
     order by ${orderBy} limit ?`,
    [...bindings, q.limit],
  );
  return rows.map(logEventOfRow);
}

/** How far retention has cut the log: its highest dropped position, and the end of the time it dropped. */
export interface EventLogExpiry {
  through: EventCursor;
  /** Events that occurred before it may be gone. */
  occurredBefore: Date;
}

/** What partition maintenance recorded in `event_log_expiry`; null while no event partition was dropped. */
export async function eventLogExpiry(trx: Knex.Transaction): Promise<EventLogExpiry | null> {
  const { rows } = await trx.raw<{ rows: { transaction_id: string; id: string; occurred_before: Date }[] }>(
    "select transaction_id::text as transaction_id, id::text as id, occurred_before from event_log_expiry where log = 'event'",
  );
  const r = rows[0];
  return r ? { through: { transactionId: BigInt(r.transaction_id), id: BigInt(r.id) }, occurredBefore: new Date(r.occurred_before.getTime()) } : null;
}
