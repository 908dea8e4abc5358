import type { Migration } from "../migrate.js";

/**
 * The event-log horizon per database. `pg_snapshot_xmin(pg_current_snapshot())` is the oldest
 * transaction running anywhere in the cluster, so a long transaction in another database on the
 * same server held back every reader of this one (a second application, a benchmark, another
 * test run). Only transactions of this database can write its `event` table, so the horizon is now
 * the oldest transaction of the statement's snapshot that is not known to run in another database:
 *
 * - the candidates are the snapshot's in-progress xids (`pg_snapshot_xip`), the same snapshot the
 *   rows are read with, so an event whose writer was running is never read past;
 * - one is left out only when `pg_stat_activity` shows it as the transaction of a backend connected
 *   to another database (an xid belongs to one backend, and a backend to one database, for good);
 * - an xid not found there (it ended meanwhile, or it is a prepared transaction) is kept: the
 *   horizon errs on the side of waiting, never of skipping;
 * - with no candidate left, the snapshot's xmax: everything before it has ended.
 *
 * Functions that read below the horizon (`read_event_log` here, analytics' rollup refresher) call it.
 */
export const perDatabaseEventHorizon: Migration = {
  name: "20261207060000_per_database_event_horizon",
  async up(knex) {
    await knex.raw(`
      create function event_log_horizon()
      returns xid8
      language sql
      stable
      set search_path = pg_catalog
      as $fn$
        select coalesce(
          (select min(x) from pg_snapshot_xip(s.snap) x
           where not exists (
             select 1 from pg_stat_activity a
             where a.backend_xid is not null
               and a.datid <> (select d.oid from pg_database d where d.datname = current_database())
               and a.backend_xid::text::bigint = x::text::bigint % 4294967296)),
          pg_snapshot_xmax(s.snap))
        from (select pg_current_snapshot() as snap) s
      $fn$;
      comment on function event_log_horizon() is
        'Oldest transaction of the current snapshot that may still write this database (in-progress xids not running in another database), or the snapshot''s xmax: every event below it has committed or rolled back.';
      revoke execute on function event_log_horizon() from public;
      grant execute on function event_log_horizon() to promptcraft_system, promptcraft_graph, promptcraft_search,
        promptcraft_analytics, promptcraft_identity, promptcraft_content;

      create or replace function read_event_log(p_after_transaction xid8, p_after_id bigint, p_limit integer)
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
        with h as (select public.event_log_horizon() as horizon)
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
    `);
  },
  async down(knex) {
    await knex.raw(`
      create or replace function read_event_log(p_after_transaction xid8, p_after_id bigint, p_limit integer)
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
      drop function if exists event_log_horizon();
    `);
  },
};
