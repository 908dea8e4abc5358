import { tenantIsolationSql, type Migration } from "@promptcraft/db";

/**
 * Hourly usage rollups, kept incrementally, so summaries stay fast at millions of events (issue 11,
 * point 3).
 *
 * - `usage_event.transaction_id xid8 default pg_current_xact_id()`: the writing transaction, as on
 *   the shared `event` log. The refresher uses the event-log reader's rule: only rows below
 *   `pg_snapshot_xmin(pg_current_snapshot())` (the oldest transaction still running) are final —
 *   no transaction below it can still commit — so it rolls up the rows in `[watermark, horizon)`
 *   and stores the horizon as the next watermark. A transaction that commits late has an xid above
 *   the horizon of every run it overlaps, so a later run rolls it up; nothing is skipped, nothing
 *   counted twice (the rollups and the watermark change in one transaction).
 * - `usage_rollup`: one row per tenant × UTC hour × (kind, model, entity, version, user, label) with
 *   counts, tokens, cost, first/last use and latency as a fixed histogram (`usage_latency_bounds()`,
 *   6 bounds per decade from 1 ms to 5,000 s): percentiles come from summed histograms. Absent
 *   dimensions are stored as '' / the nil UUID / version 0 so that the key is a plain primary key.
 * - `usage_rollup_state`: the watermark (one row).
 * - `refresh_usage_rollup()`: SECURITY DEFINER (owned by promptcraft_system, which reads every
 *   tenant's events), under a transaction advisory lock so one replica refreshes at a time.
 *
 * Readers add the not-yet-rolled tail (`transaction_id >= watermark`) in the same statement, so an
 * acknowledged event is counted at once.
 */
/** Buckets of the histogram: one below the first bound, one from each bound on (40 bounds below). */
const BUCKETS = 41;
/**
 * The latency histogram of a group of events, counted natively (one `count … filter` per bucket):
 * a per-row function building arrays cost ~45 µs per event.
 */
const HISTOGRAM_OF_EVENTS = `array[${Array.from({ length: BUCKETS }, (_, i) => `count(*) filter (where width_bucket(e.latency_ms, usage_latency_bounds()) = ${i})`).join(", ")}]::bigint[]`;

export const usageRollups: Migration = {
  name: "20261206231000_usage_rollups",
  async up(knex) {
    await knex.raw(`
      alter table usage_event add column transaction_id xid8 not null default pg_current_xact_id();
      comment on column usage_event.transaction_id is
        'The writing transaction (pg_current_xact_id()): usage_rollup holds every row below usage_rollup_state.watermark.';
      create index usage_event_xact_idx on usage_event (transaction_id);
      create index usage_event_tenant_xact_idx on usage_event (tenant_id, transaction_id);

      create function usage_latency_bounds() returns integer[]
      language sql immutable parallel safe
      as $$ select array[1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700, 1000, 1500, 2000,
                         3000, 5000, 7000, 10000, 15000, 20000, 30000, 50000, 70000, 100000, 150000, 200000, 300000,
                         500000, 700000, 1000000, 1500000, 2000000, 3000000, 5000000] $$;
      comment on function usage_latency_bounds() is
        'Upper-exclusive bounds (ms) of the latency histogram buckets: bucket i+1 counts latencies in [bounds[i], bounds[i+1]), bucket 1 those below 1 ms.';

      -- Adds two histograms (a rollup row's and the new events'), bucket by bucket.
      create function usage_hist_add(a bigint[], b bigint[]) returns bigint[]
      language sql immutable parallel safe
      as $$ select case when a is null then b when b is null then a else
              array(select coalesce(a[i], 0) + coalesce(b[i], 0) from generate_series(1, greatest(cardinality(a), cardinality(b))) i) end $$;

      create table usage_rollup (
        tenant_id uuid not null,
        hour timestamptz not null,
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
        constraint usage_rollup_pkey primary key (tenant_id, hour, kind, model, entity_id, entity_version, user_id, label)
      );
      comment on table usage_rollup is
        'Hourly (UTC) usage per tenant and dimension combination; absent dimensions are '''' / nil UUID / 0. Holds every usage_event row below usage_rollup_state.watermark.';
      create index usage_rollup_entity_idx on usage_rollup (tenant_id, entity_id, hour);
      ${tenantIsolationSql("usage_rollup")}
      create policy usage_rollup_system_write on usage_rollup for all to promptcraft_system using (true) with check (true);
      grant select on usage_rollup to promptcraft_analytics;
      grant select, insert, update on usage_rollup to promptcraft_system;

      create table usage_rollup_state (
        singleton boolean not null default true,
        watermark xid8 not null,
        refreshed_at timestamptz,
        last_rows bigint not null default 0,
        constraint usage_rollup_state_pkey primary key (singleton),
        constraint usage_rollup_state_singleton_check check (singleton)
      );
      comment on table usage_rollup_state is
        'The rollup watermark: every usage_event row with transaction_id below it is in usage_rollup, none above.';
      insert into usage_rollup_state (watermark) values ('0'::xid8);
      grant select on usage_rollup_state to promptcraft_analytics;
      grant select, update on usage_rollup_state to promptcraft_system;

      create function refresh_usage_rollup()
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
        )
        insert into public.usage_rollup as r (tenant_id, hour, kind, model, entity_id, entity_version, user_id, label,
               event_count, tokens_in, tokens_out, cost_usd, latency_count, latency_sum_ms, latency_hist, first_at, last_at)
        select * from fresh
        on conflict on constraint usage_rollup_pkey do update set
          event_count = r.event_count + excluded.event_count,
          tokens_in = r.tokens_in + excluded.tokens_in,
          tokens_out = r.tokens_out + excluded.tokens_out,
          cost_usd = r.cost_usd + excluded.cost_usd,
          latency_count = r.latency_count + excluded.latency_count,
          latency_sum_ms = r.latency_sum_ms + excluded.latency_sum_ms,
          latency_hist = usage_hist_add(r.latency_hist, excluded.latency_hist),
          first_at = least(r.first_at, excluded.first_at),
          last_at = greatest(r.last_at, excluded.last_at);
        get diagnostics v_rows = row_count;
        update public.usage_rollup_state s set watermark = v_to, refreshed_at = now(), last_rows = v_rows;
        return query select 'rolled'::text, v_to, v_rows;
      end
      $fn$;
      alter function refresh_usage_rollup() owner to promptcraft_system;
      comment on function refresh_usage_rollup() is
        'Rolls up the usage_event rows between the watermark and the oldest running transaction into usage_rollup, under an advisory lock.';
      revoke execute on function refresh_usage_rollup() from public;
      grant execute on function refresh_usage_rollup() to promptcraft_analytics;
    `);
  },
  async down(knex) {
    await knex.raw(`
      drop function if exists refresh_usage_rollup();
      drop table if exists usage_rollup_state;
      drop table if exists usage_rollup;
      drop function if exists usage_hist_add(bigint[], bigint[]);
      drop function if exists usage_latency_bounds();
      alter table usage_event drop column if exists transaction_id;
    `);
  },
};
