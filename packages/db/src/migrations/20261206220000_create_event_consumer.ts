import type { Migration } from "../migrate.js";

/**
 * What the platform's event-log reader (`packages/platform/src/event-log.ts`) needs beyond `event`:
 *
 * - `event_consumer`: one row per consumer name (`graph.projection`, `search.embedding_jobs`…): the
 *   durable checkpoint, i.e. the `(transaction_id, event_id)` pair of the last event handled, and a
 *   lease (`lease_owner`, `lease_until`) so that exactly one replica reads for a consumer. Not a tenant
 *   table: a consumer reads every tenant's events; no tenant data is stored here. Every service role
 *   may read and move checkpoints (each runs its own consumers; the CLI's `events replay` resets one).
 * - `read_event_log(...)`: the cross-tenant read of the log for those consumers, SECURITY DEFINER
 *   owned by `promptcraft_system` (which gets a read policy on `event` for it), so that graph and
 *   search can follow the log without SELECT on `event` itself. It reads only below the oldest
 *   running transaction (`pg_snapshot_xmin(pg_current_snapshot())`) and returns that horizon too.
 *   Tenant-scoped reads (analytics' audit tail) go through `event` and its tenant policy instead.
 * - `event_tail_idx` on `(transaction_id, id)`: the order of cross-tenant reads
 *   (`event_tenant_tail_idx` already serves the tenant-scoped ones).
 */
export const createEventConsumer: Migration = {
  name: "20261206220000_create_event_consumer",
  async up(knex) {
    await knex.raw(`
      create table event_consumer (
        name text not null,
        transaction_id xid8 not null default '0'::xid8,
        event_id bigint not null default 0,
        lease_owner text,
        lease_until timestamptz,
        updated_at timestamptz not null default now(),
        constraint event_consumer_pkey primary key (name),
        constraint event_consumer_name_check check (name ~ '^[a-z][a-z0-9_.:-]{0,99}$'),
        constraint event_consumer_event_id_check check (event_id >= 0),
        constraint event_consumer_lease_owner_check check (lease_owner is null or char_length(lease_owner) <= 200)
      );
      comment on table event_consumer is
        'Durable checkpoint (transaction_id, event_id) and lease of each event-log consumer (packages/platform/src/event-log.ts).';
      grant select, insert, update on event_consumer to promptcraft_identity, promptcraft_content,
        promptcraft_graph, promptcraft_search, promptcraft_analytics;

      create index event_tail_idx on event (transaction_id, id);

      grant select on event to promptcraft_system;
      create policy event_system_read on event for select to promptcraft_system using (true);

      create function read_event_log(p_after_transaction xid8, p_after_id bigint, p_limit integer)
      returns table (
        tenant_id uuid, id bigint, transaction_id xid8, occurred_at timestamptz, aggregate_type text,
        aggregate_id uuid, aggregate_version bigint, event_type text, payload jsonb, actor_type text,
        actor_id uuid, request_id text, recorded_by text, horizon xid8
      )
      language sql
      stable
      security definer
      set search_path = pg_catalog, public
      as $fn$
        -- Rows whose writer is below the horizon have all committed or rolled back: nothing can
        -- appear behind the returned ones later. The horizon comes back even with no row (the
        -- left join), so an idle reader can still move its cursor up to it.
        with h as (select pg_snapshot_xmin(pg_current_snapshot()) as horizon)
        select e.tenant_id, e.id, e.transaction_id, e.occurred_at, e.aggregate_type, e.aggregate_id,
               e.aggregate_version, e.event_type, e.payload, e.actor_type, e.actor_id, e.request_id,
               e.recorded_by, h.horizon
        from h
        left join lateral (
          select ev.* from public.event ev
          where ev.transaction_id < h.horizon
            and (ev.transaction_id, ev.id) > (p_after_transaction, p_after_id)
          order by ev.transaction_id, ev.id
          limit least(greatest(p_limit, 1), 10000)
        ) e on true
        order by e.transaction_id, e.id
      $fn$;
      comment on function read_event_log(xid8, bigint, integer) is
        'Events of every tenant after the cursor (transaction_id, id), in commit order, only below the oldest running transaction; each row (or a single all-null row) carries that horizon.';
      alter function read_event_log(xid8, bigint, integer) owner to promptcraft_system;
      revoke execute on function read_event_log(xid8, bigint, integer) from public;
      grant execute on function read_event_log(xid8, bigint, integer) to promptcraft_graph, promptcraft_search,
        promptcraft_analytics, promptcraft_identity, promptcraft_content;
    `);
  },
  async down(knex) {
    await knex.raw(`
      drop function if exists read_event_log(xid8, bigint, integer);
      drop policy if exists event_system_read on event;
      revoke select on event from promptcraft_system;
      drop index if exists event_tail_idx;
      drop table if exists event_consumer;
    `);
  },
};
