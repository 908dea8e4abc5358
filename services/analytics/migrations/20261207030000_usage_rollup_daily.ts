import { tenantIsolationSql, type Migration } from "@promptcraft/db";

/**
 * Daily usage rollups beside the hourly ones, and rollups pruned with their events.
 *
 * - `usage_rollup_daily`: `usage_rollup` summed per UTC day (same key, `day` for `hour`, same
 *   columns). Day and month summaries read it for their whole days: 24× fewer rows than the hourly
 *   rollup at best (a tenant's rows per day are its distinct dimension combinations that day), which
 *   is what brings a 30-day summary at 1M events from ~40k rollup rows to ~2k.
 * - `refresh_usage_rollup()` (replaced): the same run now adds the new events' hourly groups to
 *   `usage_rollup` and, summed per day, to `usage_rollup_daily`, in one statement: both rollups and
 *   the watermark change in one transaction, so they always hold the same events.
 * - The backfill below takes the refresher's advisory lock (waiting for a running refresh) so that the
 *   daily rows are the hourly ones of the same watermark.
 * - `prune_usage_rollups()`: deletes rollup rows (hourly and daily) before the oldest attached
 *   `usage_event` partition; partition maintenance calls it in the transaction that drops or detaches
 *   a day, so a summary never counts events the raw table no longer holds.
 */
const BUCKETS = 41;
/** The daily histogram: the hourly groups' histograms summed bucket by bucket (native sums). */
const HISTOGRAM_OF_GROUPS = `array[${Array.from({ length: BUCKETS }, (_, i) => `coalesce(sum(f.latency_hist[${i + 1}]), 0)`).join(", ")}]::bigint[]`;
/** The histogram of a group of raw events (as in 20261206231000_usage_rollups). */
const HISTOGRAM_OF_EVENTS = `array[${Array.from({ length: BUCKETS }, (_, i) => `count(*) filter (where width_bucket(e.latency_ms, usage_latency_bounds()) = ${i})`).join(", ")}]::bigint[]`;

const MERGE = (alias: string) => `
          event_count = ${alias}.event_count + excluded.event_count,
          tokens_in = ${alias}.tokens_in + excluded.tokens_in,
          tokens_out = ${alias}.tokens_out + excluded.tokens_out,
          cost_usd = ${alias}.cost_usd + excluded.cost_usd,
          latency_count = ${alias}.latency_count + excluded.latency_count,
          latency_sum_ms = ${alias}.latency_sum_ms + excluded.latency_sum_ms,
          latency_hist = usage_hist_add(${alias}.latency_hist, excluded.latency_hist),
          first_at = least(${alias}.first_at, excluded.first_at),
          last_at = greatest(${alias}.last_at, excluded.last_at)`;

const DAILY_OF_HOURLY = (from: string, where: string) => `
        select f.tenant_id, date_trunc('day', f.hour at time zone 'UTC') at time zone 'UTC', f.kind, f.model, f.entity_id,
               f.entity_version, f.user_id, f.label, sum(f.event_count)::bigint, sum(f.tokens_in)::bigint,
               sum(f.tokens_out)::bigint, sum(f.cost_usd), sum(f.latency_count)::bigint, sum(f.latency_sum_ms)::bigint,
               ${HISTOGRAM_OF_GROUPS}, min(f.first_at), max(f.last_at)
        from ${from} f ${where}
        group by 1, 2, 3, 4, 5, 6, 7, 8`;

export const usageRollupDaily: Migration = {
  name: "20261207030000_usage_rollup_daily",
  async up(knex) {
    await knex.raw(`
      create table usage_rollup_daily (
        tenant_id uuid not null,
        day timestamptz not null,
        kind text not null,
        model text not null,
        entity_id uuid not null,
        entity_version integer not null,
        user_id uuid not null,
        label text not null,
        event_count bigint not null,
        tokens_in bigint not null,
        tokens_out bigint not null,
        cost_usd numeric(24, 8) not null,
        latency_count bigint not null,
        latency_sum_ms bigint not null,
        latency_hist bigint[],
        first_at timestamptz not null,
        last_at timestamptz not null,
        constraint usage_rollup_daily_pkey primary key (tenant_id, day, kind, model, entity_id, entity_version, user_id, label)
      );
      comment on table usage_rollup_daily is
        'Daily (UTC) usage per tenant and dimension combination: usage_rollup summed per day, kept by the same refresher run (same watermark).';
      ${tenantIsolationSql("usage_rollup_daily")}
      create policy usage_rollup_daily_system_write on usage_rollup_daily for all to promptcraft_system using (true) with check (true);
      grant select on usage_rollup_daily to promptcraft_analytics;
      grant select, insert, update on usage_rollup_daily to promptcraft_system;

      -- The hourly rows as of the refresher's last run (no run in between: its lock is held).
      select pg_advisory_xact_lock(7243003);
      insert into usage_rollup_daily (tenant_id, day, kind, model, entity_id, entity_version, user_id, label, event_count,
             tokens_in, tokens_out, cost_usd, latency_count, latency_sum_ms, latency_hist, first_at, last_at)
      ${DAILY_OF_HOURLY("usage_rollup", "")};

      create or replace function refresh_usage_rollup()
      returns table (status text, watermark xid8, rollup_rows bigint)
      language plpgsql volatile security definer
      set search_path = pg_catalog, public
      as $fn$
      #variable_conflict use_column
      declare
        v_from xid8;
        v_to xid8;
        v_rows bigint;
      begin
        if not pg_try_advisory_xact_lock(7243003) then
          -- Another replica is rolling up right now.
          return query select 'skipped'::text, s.watermark, 0::bigint from public.usage_rollup_state s;
          return;
        end if;
        select s.watermark into v_from from public.usage_rollup_state s;
        -- Below the oldest running transaction every row is final (the event-log reader's rule).
        v_to := pg_snapshot_xmin(pg_current_snapshot());
        if v_to <= v_from then
          return query select 'current'::text, v_from, 0::bigint;
          return;
        end if;
        with fresh as (
          select e.tenant_id, date_trunc('hour', e.occurred_at at time zone 'UTC') at time zone 'UTC' as hour, e.kind,
                 coalesce(e.model, '') as model, coalesce(e.entity_id, '00000000-0000-0000-0000-000000000000') as entity_id,
                 coalesce(e.entity_version, 0) as entity_version,
                 coalesce(e.user_id, '00000000-0000-0000-0000-000000000000') as user_id, coalesce(e.label, '') as label,
                 count(*) as event_count, sum(e.tokens_in)::bigint as tokens_in, sum(e.tokens_out)::bigint as tokens_out,
                 sum(e.cost_usd) as cost_usd, count(e.latency_ms) as latency_count,
                 coalesce(sum(e.latency_ms), 0)::bigint as latency_sum_ms,
                 ${HISTOGRAM_OF_EVENTS} as latency_hist,
                 min(e.occurred_at) as first_at, max(e.occurred_at) as last_at
          from public.usage_event e
          where e.transaction_id >= v_from and e.transaction_id < v_to
          group by 1, 2, 3, 4, 5, 6, 7, 8
        ), hourly as (
          insert into public.usage_rollup as r (tenant_id, hour, kind, model, entity_id, entity_version, user_id, label,
                 event_count, tokens_in, tokens_out, cost_usd, latency_count, latency_sum_ms, latency_hist, first_at, last_at)
          select * from fresh
          on conflict on constraint usage_rollup_pkey do update set ${MERGE("r")}
          returning 1
        ), daily as (
          insert into public.usage_rollup_daily as d (tenant_id, day, kind, model, entity_id, entity_version, user_id, label,
                 event_count, tokens_in, tokens_out, cost_usd, latency_count, latency_sum_ms, latency_hist, first_at, last_at)
          ${DAILY_OF_HOURLY("fresh", "")}
          on conflict on constraint usage_rollup_daily_pkey do update set ${MERGE("d")}
          returning 1
        )
        -- Every data-modifying CTE runs, referenced or not.
        select count(*) into v_rows from hourly;
        update public.usage_rollup_state s set watermark = v_to, refreshed_at = now(), last_rows = v_rows;
        return query select 'rolled'::text, v_to, v_rows;
      end
      $fn$;
      comment on function refresh_usage_rollup() is
        'Rolls up the usage_event rows between the watermark and the oldest running transaction into usage_rollup (hourly) and usage_rollup_daily, under an advisory lock. rollup_rows counts the hourly rows written.';

      create function prune_usage_rollups() returns bigint
      language plpgsql
      security definer
      set search_path = pg_catalog, public
      as $fn$
      declare
        v_oldest timestamptz;
        v_hourly bigint;
        v_daily bigint;
      begin
        select min((regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\)'))[1]::timestamptz)
          into v_oldest
        from pg_inherits i
        join pg_class c on c.oid = i.inhrelid
        where i.inhparent = 'public.usage_event'::regclass;
        if v_oldest is null then
          return 0;
        end if;
        delete from public.usage_rollup where hour < v_oldest;
        get diagnostics v_hourly = row_count;
        -- Partitions are whole UTC days: a day before the oldest one is wholly gone.
        delete from public.usage_rollup_daily where day < v_oldest;
        get diagnostics v_daily = row_count;
        return v_hourly + v_daily;
      end
      $fn$;
      comment on function prune_usage_rollups() is
        'Deletes usage_rollup and usage_rollup_daily rows before the oldest attached usage_event partition (run by partition maintenance). Returns the count.';
      revoke execute on function prune_usage_rollups() from public;
      grant execute on function prune_usage_rollups() to promptcraft_analytics;
    `);
  },
  async down(knex) {
    await knex.raw(`
      drop function if exists prune_usage_rollups();
      drop table if exists usage_rollup_daily;
    `);
  },
};
