import type { Migration } from "@promptcraft/db";

/**
 * `usage_event` (brief §4.7): every use of an asset, range-partitioned by UTC day on occurred_at.
 *
 * Idempotent ingest: the client makes the event's `id` (a UUID, v7 recommended) AND stamps
 * `occurred_at` once, when the event happens, and sends both unchanged on every retry. A partitioned
 * table's unique constraint must contain the partition key, so the primary key is
 * (tenant_id, id, occurred_at) and the ingest writes
 *   insert into usage_event (...) values (...) on conflict on constraint usage_event_pkey do nothing
 * which makes a retried batch a no-op. (Uniqueness of `id` alone across days is not enforced; an id
 * re-sent with a different occurred_at is a different event by definition. A global unique index would
 * need a non-partitioned side table written on every event; we decided the client contract is enough.)
 *
 * No foreign keys on this hot, append-only table (events outlive purged entities; partitioned FKs cost
 * an index probe per row); the analytics service validates ids on ingest. Usage rows are immutable:
 * promptcraft_analytics may SELECT and INSERT only; old days go by retention
 * (`run_partition_maintenance`, policy row below: 14 days ahead, 7 behind, dropped after 400 days).
 */
export const createUsageEvent: Migration = {
  name: "20261125095000_create_usage_event",
  async up(knex) {
    await knex.raw(`
      create table usage_event (
        tenant_id uuid not null,
        id uuid not null,
        occurred_at timestamptz not null,
        received_at timestamptz not null default now(),
        kind text not null,
        user_id uuid,
        api_key_id uuid,
        entity_id uuid,
        entity_version integer,
        label text,
        model text,
        tokens_in integer not null default 0,
        tokens_out integer not null default 0,
        cost_usd numeric(18, 8) not null default 0,
        latency_ms integer,
        metadata jsonb not null default '{}'::jsonb,
        constraint usage_event_pkey primary key (tenant_id, id, occurred_at),
        constraint usage_event_kind_check check (kind ~ '^[a-z][a-z0-9_]{0,39}$'),
        constraint usage_event_entity_version_check check (
          entity_version is null or (entity_id is not null and entity_version >= 1)),
        constraint usage_event_label_check check (label is null or label ~ '^[a-z0-9_.-]{1,36}$'),
        constraint usage_event_model_check check (model is null or char_length(model) between 1 and 200),
        constraint usage_event_tokens_check check (tokens_in >= 0 and tokens_out >= 0),
        constraint usage_event_cost_check check (cost_usd >= 0),
        constraint usage_event_latency_check check (latency_ms is null or latency_ms >= 0),
        constraint usage_event_metadata_check check (jsonb_typeof(metadata) = 'object')
      ) partition by range (occurred_at);
      comment on table usage_event is
        'Usage events, partitioned by UTC day. Idempotency key = (tenant_id, id, occurred_at): insert ... on conflict on constraint usage_event_pkey do nothing.';
      comment on column usage_event.kind is 'view, render, execute, search, llm_call, embedding, ... (open set, lower_snake_case).';
      create index usage_event_tenant_time_idx on usage_event (tenant_id, occurred_at);
      create index usage_event_entity_idx on usage_event (tenant_id, entity_id, occurred_at) where entity_id is not null;

      alter table usage_event enable row level security;
      alter table usage_event force row level security;
      create policy usage_event_tenant_isolation on usage_event
        using (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid)
        with check (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid);

      grant select, insert on usage_event to promptcraft_analytics;

      insert into partition_policy (parent_table, granularity, premake, premake_behind, retention, retention_action)
      values ('usage_event', 'day', 14, 7, interval '400 days', 'drop');
      select parent_table, action, partition_name from run_partition_maintenance('usage_event');
    `);
  },
  async down(knex) {
    await knex.raw(`
      delete from partition_policy where parent_table = 'usage_event';
      drop table if exists usage_event;
    `);
  },
};
