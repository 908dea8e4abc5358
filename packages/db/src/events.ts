import type { Knex } from "knex";

/** One entry of the shared audit event log (`event`, brief §4.6). */
export interface AuditEvent {
  tenantId: string;
  /** What kind of thing changed, as the analytics contract names it: `tenant`, `user`, `entity`… (lower snake case). */
  aggregateType: string;
  aggregateId?: string | null;
  /** The aggregate's version after the change, where it has one. */
  aggregateVersion?: number | bigint | null;
  /** What happened: `<service>.<aggregate>.<past-tense verb>` (`identity.user.created`, `identity.login.failed`, `content.entity.updated`). */
  eventType: string;
  payload?: Record<string, unknown>;
  actorType?: "user" | "api_key" | "service" | "system";
  actorId?: string | null;
  requestId?: string | null;
}

/**
 * Appends events to the audit log inside `trx`, the transaction of the change they record, so a
 * change and its event commit or roll back together. No RETURNING: only analytics may read the
 * log back (row-level security and grants), every service may append.
 */
export async function appendEvents(trx: Knex.Transaction, events: readonly AuditEvent[]): Promise<void> {
  if (events.length === 0) return;
  await trx("event").insert(
    events.map((e) => ({
      tenant_id: e.tenantId,
      aggregate_type: e.aggregateType,
      aggregate_id: e.aggregateId ?? null,
      aggregate_version: e.aggregateVersion === undefined || e.aggregateVersion === null ? null : String(e.aggregateVersion),
      event_type: e.eventType,
      payload: JSON.stringify(e.payload ?? {}),
      actor_type: e.actorType ?? "user",
      actor_id: e.actorId ?? null,
      request_id: e.requestId ?? null,
    })),
  );
}
