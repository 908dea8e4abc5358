import type { Migration } from "@promptcraft/db";

/**
 * `prune_usage_event_ids()`: deletes the idempotency keys (`usage_event_id`) of events older than
 * the oldest attached `usage_event` partition, i.e. those whose day partition maintenance has
 * dropped or detached. Called by partition maintenance in the same transaction as the drop, so an
 * id is a duplicate exactly as long as its event is kept, and a dry run rolls it back with the rest.
 * SECURITY DEFINER like `run_partition_maintenance` (analytics may not delete keys itself: they are
 * its proof of idempotency), pinned to `pg_catalog, public`, executable by promptcraft_analytics only.
 */
export const pruneUsageEventIds: Migration = {
  name: "20261206230200_prune_usage_event_ids",
  async up(knex) {
    await knex.raw(`
      create function prune_usage_event_ids() returns bigint
      language plpgsql
      security definer
      set search_path = pg_catalog, public
      as $fn$
      declare
        v_oldest timestamptz;
        v_count bigint;
      begin
        select min((regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\)'))[1]::timestamptz)
          into v_oldest
        from pg_inherits i
        join pg_class c on c.oid = i.inhrelid
        where i.inhparent = 'public.usage_event'::regclass;
        if v_oldest is null then
          return 0;
        end if;
        delete from public.usage_event_id where occurred_at < v_oldest;
        get diagnostics v_count = row_count;
        return v_count;
      end
      $fn$;
      comment on function prune_usage_event_ids() is
        'Deletes usage_event_id rows older than the oldest attached usage_event partition (run by partition maintenance). Returns the count.';
      revoke execute on function prune_usage_event_ids() from public;
      grant execute on function prune_usage_event_ids() to promptcraft_analytics;
    `);
  },
  async down(knex) {
    await knex.raw(`drop function if exists prune_usage_event_ids();`);
  },
};
