import type { Migration } from "@promptcraft/db";

/**
 * Where the event log's retention has cut it, so that a stale cursor answers OUT_OF_RANGE
 * (CURSOR_EXPIRED) instead of silently skipping what was dropped (see docs/decisions.md).
 *
 * - `event_log_expiry` (one row at most): the highest `(transaction_id, id)` of every `event` partition
 *   that partition maintenance dropped or detached, the latest end of their ranges (`occurred_before`:
 *   events that occurred before it may be gone), the partition and when. A cursor below the position
 *   may miss events, and so may a tail from a time before `occurred_before`; otherwise nothing after
 *   the start is gone. Not tenant data (positions only): no
 *   tenant_id and no row-level security; promptcraft_analytics reads and writes it, as the rest of
 *   partition maintenance's bookkeeping.
 * - `event_partition_ends()`: the last `(transaction_id, id)` of each attached `event` partition holding
 *   rows (an index probe each, on `event_tail_idx`'s partition) and the end of its range. Partition maintenance reads it in its
 *   transaction before it drops or detaches, and records the greatest end of what went. SECURITY
 *   DEFINER: partitions force row-level security and nobody else addresses them directly.
 */
export const eventLogExpiry: Migration = {
  name: "20261207080200_event_log_expiry",
  async up(knex) {
    await knex.raw(`
      create table event_log_expiry (
        log text not null default 'event',
        transaction_id xid8 not null,
        id bigint not null,
        occurred_before timestamptz not null,
        partition_name text not null,
        expired_at timestamptz not null,
        constraint event_log_expiry_pkey primary key (log),
        constraint event_log_expiry_log_check check (log = 'event')
      );
      comment on table event_log_expiry is
        'The highest (transaction_id, id) of the event partitions dropped or detached by retention: a cursor below it has lost events (CURSOR_EXPIRED).';
      grant select, insert, update on event_log_expiry to promptcraft_analytics;

      create function event_partition_ends()
      returns table (partition_name text, transaction_id xid8, id bigint, range_end timestamptz)
      language plpgsql stable security definer
      set search_path = pg_catalog, public
      as $fn$
      declare
        v_name text;
        v_end timestamptz;
      begin
        for v_name, v_end in
          select c.relname,
                 (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''([^'']+)''\\)'))[1]::timestamptz
          from pg_inherits i join pg_class c on c.oid = i.inhrelid
          where i.inhparent = 'public.event'::regclass
          order by c.relname
        loop
          return query execute format(
            'select %L::text, e.transaction_id, e.id, %L::timestamptz from public.%I e order by e.transaction_id desc, e.id desc limit 1',
            v_name, v_end, v_name);
        end loop;
      end
      $fn$;
      comment on function event_partition_ends() is
        'The last (transaction_id, id) and the range end of each attached event partition holding rows (read by partition maintenance before it drops or detaches).';
      revoke execute on function event_partition_ends() from public;
      grant execute on function event_partition_ends() to promptcraft_analytics;
    `);
  },
  async down(knex) {
    await knex.raw(`
      drop function if exists event_partition_ends();
      drop table if exists event_log_expiry;
    `);
  },
};
