import { withServiceRole, withTenant, type Knex } from "@promptcraft/db";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import {
  CURSOR_INTEGER,
  CURSOR_TIMESTAMP,
  cursorAtTime,
  decodePageCursor,
  filterMatches,
  filterSql,
  followEvents,
  formatCursor,
  compareCursors,
  InvalidArgumentError,
  logEnd,
  OutOfRangeError,
  pageOf,
  pageSizeOf,
  parseCursor,
  parseFilter,
  requireCallerRole,
  UnavailableError,
  type CallerContext,
  type EventCursor,
  type FilterFields,
  type LogEvent,
} from "@promptcraft/platform";
import * as store from "../store/events.js";

/**
 * The audit log (brief §4.6) for tenant admins: ListAuditEvents pages it, TailAuditEvents follows it
 * in commit order through the platform's event-log reader. Both read under the tenant's row-level
 * security as analytics (the only role with SELECT on `event`).
 */

/** Stored `actor_type` values each API name stands for (the log keeps no separate anonymous or platform-admin actor: both are `system`). */
const ACTOR_TYPES = { ACTOR_TYPE_USER: ["user"], ACTOR_TYPE_API_KEY: ["api_key"], ACTOR_TYPE_SYSTEM: ["system", "service"] } as const;

const TAIL_FIELDS: FilterFields = {
  event_type: { type: "string", column: "event_type", prefix: true },
  aggregate_type: { type: "string", column: "aggregate_type", prefix: true },
  aggregate_id: { type: "uuid", column: "aggregate_id" },
  actor_id: { type: "uuid", column: "actor_id" },
  actor_type: { type: "enum", column: "actor_type", values: ACTOR_TYPES },
  request_id: { type: "string", column: "request_id", prefix: true },
  // The service is the database role that appended the event.
  service: { type: "string", column: "recorded_by", stored: (name) => `promptcraft_${name}` },
};
const LIST_FIELDS: FilterFields = { ...TAIL_FIELDS, occur_time: { type: "time", column: "occurred_at" } };

/** The service that appended an event (its role without the prefix). */
export function serviceOf(e: LogEvent): string {
  return e.recordedBy.replace(/^promptcraft_/, "");
}

/** The API's ActorType name of a stored actor type. */
export function actorTypeName(stored: string): keyof typeof ACTOR_TYPES {
  return stored === "user" ? "ACTOR_TYPE_USER" : stored === "api_key" ? "ACTOR_TYPE_API_KEY" : "ACTOR_TYPE_SYSTEM";
}

const TRANSACTION_ID = /^\d{1,20}$/;

/**
 * OUT_OF_RANGE (CURSOR_EXPIRED) when partition maintenance dropped events a reader has not seen:
 * some dropped event comes after its `position` in commit order (`expiry.through`) and, for a reader
 * that started from a time, the drop reached that time (older events were never owed to it). A
 * reader from a time that has no position yet is judged by the time alone: the position found for a
 * time after a drop already lies past what was dropped.
 */
export function checkNotExpired(expiry: store.EventLogExpiry | null, from: { position?: EventCursor; startTime?: Date | undefined }): void {
  if (!expiry) return;
  if (from.position && compareCursors(from.position, expiry.through) >= 0) return;
  if (from.startTime && from.startTime >= expiry.occurredBefore) return;
  if (!from.position && !from.startTime) return;
  const restart = expiry.occurredBefore.toISOString();
  throw new OutOfRangeError(`events after this position were dropped by the event log's retention; restart from a time at or after ${restart}`, {
    reason: ErrorReason.CURSOR_EXPIRED,
    metadata: { restart_time: restart, ...(from.position ? { cursor: formatCursor(from.position) } : {}) },
  });
}

/** A page of the tenant's events, newest first or oldest first in commit order. Admin. */
export async function listAuditEvents(
  db: Knex,
  caller: CallerContext,
  q: { filter: string; orderBy: string; pageSize: number; pageToken: string },
): Promise<{ events: LogEvent[]; nextPageToken: string }> {
  requireCallerRole(caller, "admin");
  const order = q.orderBy === "occur_time" || q.orderBy === "occur_time asc" ? "asc" : "desc";
  const filter = parseFilter(q.filter, LIST_FIELDS);
  const params = { t: caller.tenantId, f: q.filter, o: order };
  const limit = pageSizeOf(q.pageSize, 100);
  let after: store.AuditPageAfter | null = null;
  if (order === "asc") {
    const c = decodePageCursor(q.pageToken, params, { x: TRANSACTION_ID, id: CURSOR_INTEGER });
    if (c) after = { order, transactionId: c.x, id: c.id };
  } else {
    const c = decodePageCursor(q.pageToken, params, { t: CURSOR_TIMESTAMP, id: CURSOR_INTEGER });
    if (c) after = { order, occurredAt: c.t, id: c.id };
  }
  const rows = await withTenant(db, { service: "analytics", tenantId: caller.tenantId, userId: caller.userId, signal: caller.signal }, async (trx) => {
    // Commit-order pages resume at a position, which retention may have passed; newest-first pages
    // only run out when they reach the retained log's oldest events.
    if (after?.order === "asc") checkNotExpired(await store.eventLogExpiry(trx), { position: { transactionId: BigInt(after.transactionId), id: BigInt(after.id) } });
    return store.listEvents(trx, caller.tenantId, { order, where: filter && filterSql(filter, LIST_FIELDS), after, limit: limit + 1 });
  });
  const { page, nextPageToken } = pageOf(rows, limit, params, (last): Record<string, string> =>
    order === "asc" ? { x: String(last.transactionId), id: String(last.id) } : { t: last.occurredAt.toISOString(), id: String(last.id) },
  );
  return { events: page, nextPageToken };
}

/** One item of a tail: an event with its position, or a heartbeat with the position scanned. */
export type TailItem = { event: LogEvent; cursor: EventCursor } | { heartbeat: EventCursor };

/** What a tail starts from and how it behaves. */
export interface TailRequest {
  filter: string;
  startCursor: string;
  startTime: Date | undefined;
  heartbeatMs: number;
  /** Wait between idle reads (the platform reader's short poll). */
  pollIntervalMs: number;
}

/**
 * The tenant's events after the start, in commit order, then new ones as they commit, forever:
 * until the caller goes away (its signal) or `stopping` aborts — then UNAVAILABLE with the
 * position to resume from (`ErrorInfo.metadata.cursor` and the message). Admin.
 */
export async function* tailAuditEvents(db: Knex, caller: CallerContext, q: TailRequest, stopping: AbortSignal | undefined): AsyncGenerator<TailItem> {
  requireCallerRole(caller, "admin");
  const filter = parseFilter(q.filter, TAIL_FIELDS);
  let start: EventCursor | undefined;
  if (q.startCursor !== "") {
    start = parseCursor(q.startCursor);
    if (!start) throw new InvalidArgumentError({ field: "start_cursor", description: "not a cursor of this log (use an event's or a heartbeat's cursor)" });
  }
  const signal = stopping ? AbortSignal.any([caller.signal, stopping]) : caller.signal;
  const read = { db, service: "analytics" as const, tenantId: caller.tenantId, batchSize: 1000, signal };
  let position = start ?? (q.startTime ? await cursorAtTime(read, q.startTime) : await logEnd(read));
  const expiry = () => withServiceRole(db, "analytics", (trx) => store.eventLogExpiry(trx), { signal });
  // From the end of the log nothing is owed yet.
  if (start || q.startTime) checkNotExpired(await expiry(), start ? { position: start } : { startTime: q.startTime });
  // Retention may drop events while a replay reads: a read that found events — or follows one that
  // did (the drop may have taken all the rest) — is checked against it before anything is sent.
  let replaying = true;
  let lastSent = Date.now();
  try {
    for await (const batch of followEvents({ ...read, pollIntervalMs: q.pollIntervalMs }, position)) {
      const found = batch.events.length > 0;
      if (found || replaying) checkNotExpired(await expiry(), { position, startTime: q.startTime });
      replaying = found;
      for (const event of batch.events) {
        position = { transactionId: event.transactionId, id: event.id };
        if (q.startTime && event.occurredAt < q.startTime) continue;
        if (filter && !filterMatches(filter, recordOf(event))) continue;
        yield { event, cursor: position };
        lastSent = Date.now();
      }
      position = batch.next;
      if (Date.now() - lastSent >= q.heartbeatMs) {
        yield { heartbeat: position };
        lastSent = Date.now();
      }
    }
  } catch (err) {
    if (!stopping?.aborted || caller.signal.aborted) throw err;
  }
  if (stopping?.aborted && !caller.signal.aborted) {
    const cursor = formatCursor(position);
    throw new UnavailableError(`the server is shutting down; resume on another replica with start_cursor "${cursor}"`, { metadata: { cursor }, retryAfterMs: 0 });
  }
}

/** An event's values by filter field name, in stored form. */
function recordOf(e: LogEvent): Record<string, string | null> {
  return {
    event_type: e.eventType,
    aggregate_type: e.aggregateType,
    aggregate_id: e.aggregateId,
    actor_id: e.actorId,
    actor_type: e.actorType,
    request_id: e.requestId,
    service: e.recordedBy,
  };
}
