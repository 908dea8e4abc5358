import { sqlTime, type Knex } from "@promptcraft/db";
import type { NewUsageEvent } from "./usage.js";

/** A stored usage event as ListUsageEvents returns it: what ingest wrote, with tenant and ingest time. */
export interface StoredUsageEvent extends Omit<NewUsageEvent, "apiKeyId"> {
  tenantId: string;
  receivedAt: Date;
  /** `occurred_at` to the microsecond (`YYYY-MM-DDTHH:MM:SS.ffffffZ`), the page cursor's time. */
  cursorTime: string;
}

interface Row {
  id: string;
  tenant_id: string;
  occurred_at: Date;
  received_at: Date;
  kind: string;
  user_id: string | null;
  entity_id: string | null;
  entity_version: number | null;
  label: string | null;
  model: string | null;
  tokens_in: number;
  tokens_out: number;
  cost_micros: string;
  latency_ms: number | null;
  metadata: Record<string, unknown>;
  request_id: string | null;
  cursor_time: string;
}

/**
 * The tenant's usage events in `[start, end)`, newest first (by `occurred_at`, then id), after the
 * page cursor `after` when given; `where` is a condition from the filter, bound.
 */
export async function listUsageEvents(
  trx: Knex.Transaction,
  tenantId: string,
  q: { start: Date; end: Date; where: { sql: string; bindings: (string | Date)[] } | undefined; after: { time: string; id: string } | null; limit: number },
): Promise<StoredUsageEvent[]> {
  const conditions = ["tenant_id = ?", "occurred_at >= ?::timestamptz", "occurred_at < ?::timestamptz"];
  const bindings: Knex.Value[] = [tenantId, sqlTime(q.start), sqlTime(q.end)];
  if (q.where) {
    conditions.push(`(${q.where.sql})`);
    bindings.push(...q.where.bindings);
  }
  if (q.after) {
    conditions.push("(occurred_at, id) < (?::timestamptz, ?::uuid)");
    bindings.push(q.after.time, q.after.id);
  }
  const { rows } = await trx.raw<{ rows: Row[] }>(
    `select id, tenant_id, occurred_at, received_at, kind, user_id, entity_id, entity_version, label, model, tokens_in, tokens_out,
            round(cost_usd * 1000000)::text as cost_micros, latency_ms, metadata, request_id,
            to_char(occurred_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as cursor_time
     from usage_event where ${conditions.join(" and ")}
     order by occurred_at desc, id desc limit ?`,
    [...bindings, q.limit],
  );
  return rows.map((r) => ({
    id: r.id,
    tenantId: r.tenant_id,
    occurredAt: r.occurred_at,
    receivedAt: r.received_at,
    kind: r.kind,
    userId: r.user_id,
    entityId: r.entity_id,
    entityVersion: r.entity_version,
    label: r.label,
    model: r.model,
    tokensIn: r.tokens_in,
    tokensOut: r.tokens_out,
    costMicros: BigInt(r.cost_micros),
    latencyMs: r.latency_ms,
    metadata: r.metadata,
    requestId: r.request_id,
    cursorTime: r.cursor_time,
  }));
}
