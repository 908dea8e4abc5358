import { sqlTime, type Knex } from "@promptcraft/db";

/** One usage event as ingest writes it (`usage_event` columns; the tenant is the transaction's). */
export interface NewUsageEvent {
  id: string;
  occurredAt: Date;
  kind: string;
  userId: string | null;
  apiKeyId: string | null;
  entityId: string | null;
  entityVersion: number | null;
  label: string | null;
  model: string | null;
  tokensIn: number;
  tokensOut: number;
  /** Micro-USD, stored as `cost_usd numeric(18,8)` (exact: the division happens in SQL). */
  costMicros: bigint;
  latencyMs: number | null;
  metadata: Record<string, unknown>;
  requestId: string | null;
}

/**
 * Stores the events of `tenantId` whose id the tenant has never stored, in one statement, and
 * returns the ids it stored (the others are duplicates). The statement claims each id in
 * `usage_event_id` (`on conflict do nothing`, so a concurrent insert of the same id waits for the
 * first and then yields) and inserts the events of the ids it claimed: an id is stored at most once
 * whatever `occurred_at` each copy carries. Columns travel as one array each (`unnest`), so a batch
 * of 1000 events is one round trip and one plan. Run it in a transaction scoped to `tenantId`
 * (row-level security checks every row).
 */
export async function insertUsageEvents(trx: Knex.Transaction, tenantId: string, events: readonly NewUsageEvent[]): Promise<Set<string>> {
  if (events.length === 0) return new Set();
  const col = <T>(f: (e: NewUsageEvent) => T): T[] => events.map(f);
  const { rows } = await trx.raw<{ rows: { id: string }[] }>(
    `with input as (
       select * from unnest(?::uuid[], ?::timestamptz[], ?::text[], ?::uuid[], ?::uuid[], ?::uuid[], ?::int[], ?::text[], ?::text[],
                            ?::int[], ?::int[], ?::numeric[], ?::int[], ?::jsonb[], ?::text[])
         as t(id, occurred_at, kind, user_id, api_key_id, entity_id, entity_version, label, model,
              tokens_in, tokens_out, cost_micros, latency_ms, metadata, request_id)
     ), claimed as (
       insert into usage_event_id (tenant_id, id, occurred_at)
       select ?::uuid, i.id, i.occurred_at from input i
       on conflict on constraint usage_event_id_pkey do nothing
       returning id
     )
     insert into usage_event (tenant_id, id, occurred_at, kind, user_id, api_key_id, entity_id, entity_version, label, model,
                              tokens_in, tokens_out, cost_usd, latency_ms, metadata, request_id)
     select ?::uuid, i.id, i.occurred_at, i.kind, i.user_id, i.api_key_id, i.entity_id, i.entity_version, i.label, i.model,
            i.tokens_in, i.tokens_out, i.cost_micros / 1000000, i.latency_ms, i.metadata, i.request_id
     from input i join claimed c on c.id = i.id
     returning id`,
    // Arrays bind as one parameter each (knex passes them to pg, which sends array literals).
    [
      col((e) => e.id),
      col((e) => sqlTime(e.occurredAt)),
      col((e) => e.kind),
      col((e) => e.userId),
      col((e) => e.apiKeyId),
      col((e) => e.entityId),
      col((e) => e.entityVersion),
      col((e) => e.label),
      col((e) => e.model),
      col((e) => e.tokensIn),
      col((e) => e.tokensOut),
      col((e) => e.costMicros.toString()),
      col((e) => e.latencyMs),
      col((e) => JSON.stringify(e.metadata)),
      col((e) => e.requestId),
      tenantId,
      tenantId,
    ] as Knex.RawBinding[],
  );
  return new Set(rows.map((r) => r.id));
}

/**
 * Moves the transaction's tenant to `tenantId` (as withTenant set it: transaction-local), so that
 * one transaction can store the events of several tenants, each under its own row-level security.
 * Only for callers trusted with every tenant (a service credential).
 */
export async function switchTenant(trx: Knex.Transaction, tenantId: string): Promise<void> {
  await trx.raw("select set_config('app.tenant_id', ?, true)", [tenantId]);
}

/** A `[from, to)` range of `usage_event` covered by one daily partition. */
export interface PartitionRange {
  from: Date;
  to: Date;
}

/**
 * The ranges of `usage_event`'s partitions, oldest first, from the catalog (bounds as
 * `pg_get_expr` prints them, cast back to timestamptz in SQL whatever the session's time zone).
 */
export async function usagePartitionRanges(trx: Knex.Transaction): Promise<PartitionRange[]> {
  const { rows } = await trx.raw<{ rows: { from: Date; to: Date }[] }>(
    `select b[1]::timestamptz as "from", b[2]::timestamptz as "to"
     from (
       select regexp_match(pg_get_expr(c.relpartbound, c.oid), $$FROM \\('([^']+)'\\) TO \\('([^']+)'\\)$$) as b
       from pg_catalog.pg_inherits i join pg_catalog.pg_class c on c.oid = i.inhrelid
       where i.inhparent = 'public.usage_event'::regclass
     ) p
     where b is not null
     order by 1`,
  );
  return rows;
}
