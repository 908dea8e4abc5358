import type { Migration } from "@promptcraft/db";

/**
 * Read models (brief §4.10): materialized views `entity_stats` and `tenant_usage_summary`, each with
 * a unique index so that `REFRESH MATERIALIZED VIEW CONCURRENTLY` works (readers are never blocked),
 * and `read_model_refresh`, which records when each was refreshed (the seed read
 * `pg_matviews.last_refresh`, a column that does not exist).
 *
 * Cross-tenant by nature, so:
 * - both views are owned by promptcraft_system (REFRESH needs the owner, and the refresh query runs as
 *   the owner: promptcraft_system has SELECT policies on exactly the rows they aggregate);
 * - nobody is granted the materialized views themselves (they cannot carry row-level security);
 *   services read `current_tenant_entity_stats` / `current_tenant_usage_summary`, security-barrier
 *   views that return the rows of the transaction's tenant only;
 * - `refresh_read_model(view = null, concurrently = true)` is SECURITY DEFINER (owned by
 *   promptcraft_system), executable by promptcraft_analytics only, takes a transaction-level
 *   advisory lock so that one replica refreshes at a time (the others get status 'skipped'), and
 *   records start, end, duration and row count. `data_as_of` = the start: the refresh reads one
 *   snapshot taken then.
 *
 *   select view_name, status, refreshed_at from refresh_read_model();
 *   select view_name, last_refreshed_at from read_model_refresh;   -- freshness
 */
export const createReadModels: Migration = {
  name: "20261125095100_create_read_models",
  async up(knex) {
    await knex.raw(`
      -- What promptcraft_system may read across tenants to build the read models.
      create policy entity_system_read on entity for select to promptcraft_system using (true);
      create policy favorite_system_read on favorite for select to promptcraft_system using (true);
      create policy usage_event_system_read on usage_event for select to promptcraft_system using (true);
      grant select (tenant_id, id, entity_type, current_version, created_at, updated_at, deleted_at)
        on entity to promptcraft_system;
      grant select (tenant_id, entity_id) on favorite to promptcraft_system;
      grant select on usage_event to promptcraft_system;
      grant select (plan) on tenant to promptcraft_system;

      create materialized view entity_stats as
      select e.tenant_id,
             e.id as entity_id,
             e.entity_type,
             e.current_version as version_count,
             e.created_at,
             e.updated_at,
             e.deleted_at is not null as deleted,
             coalesce(f.favorite_count, 0) as favorite_count,
             coalesce(u.uses, 0) as uses_last_30d,
             coalesce(u.views, 0) as views_last_30d,
             coalesce(u.renders, 0) as renders_last_30d,
             coalesce(u.executions, 0) as executions_last_30d,
             coalesce(u.tokens_in, 0) as tokens_in_last_30d,
             coalesce(u.tokens_out, 0) as tokens_out_last_30d,
             coalesce(u.cost_usd, 0) as cost_usd_last_30d,
             u.last_used_at
      from public.entity e
      left join (
        select fa.tenant_id, fa.entity_id, count(*) as favorite_count
        from public.favorite fa
        group by fa.tenant_id, fa.entity_id
      ) f on f.tenant_id = e.tenant_id and f.entity_id = e.id
      left join (
        select ue.tenant_id, ue.entity_id,
               count(*) as uses,
               count(*) filter (where ue.kind = 'view') as views,
               count(*) filter (where ue.kind = 'render') as renders,
               count(*) filter (where ue.kind = 'execute') as executions,
               sum(ue.tokens_in)::bigint as tokens_in,
               sum(ue.tokens_out)::bigint as tokens_out,
               sum(ue.cost_usd) as cost_usd,
               max(ue.occurred_at) as last_used_at
        from public.usage_event ue
        where ue.occurred_at >= now() - interval '30 days' and ue.entity_id is not null
        group by ue.tenant_id, ue.entity_id
      ) u on u.tenant_id = e.tenant_id and u.entity_id = e.id;
      create unique index entity_stats_key on entity_stats (tenant_id, entity_id);

      create materialized view tenant_usage_summary as
      select t.id as tenant_id,
             t.plan,
             coalesce(en.entity_count, 0) as entity_count,
             coalesce(us.user_count, 0) as user_count,
             coalesce(m.events_last_30d, 0) as events_last_30d,
             coalesce(m.tokens_in_last_30d, 0) as tokens_in_last_30d,
             coalesce(m.tokens_out_last_30d, 0) as tokens_out_last_30d,
             coalesce(m.tokens_in_last_30d + m.tokens_out_last_30d, 0) as tokens_last_30d,
             coalesce(m.cost_usd_last_30d, 0) as cost_usd_last_30d,
             coalesce(m.events_this_month, 0) as events_this_month,
             coalesce(m.tokens_this_month, 0) as tokens_this_month,
             coalesce(m.cost_usd_this_month, 0) as cost_usd_this_month,
             m.last_usage_at
      from public.tenant t
      left join (
        select x.tenant_id, count(*) as entity_count
        from public.entity x where x.deleted_at is null group by x.tenant_id
      ) en on en.tenant_id = t.id
      left join (
        select au.tenant_id, count(*) as user_count
        from public.app_user au where au.deleted_at is null group by au.tenant_id
      ) us on us.tenant_id = t.id
      left join (
        select ue.tenant_id,
               count(*) filter (where ue.occurred_at >= now() - interval '30 days') as events_last_30d,
               coalesce(sum(ue.tokens_in) filter (where ue.occurred_at >= now() - interval '30 days'), 0)::bigint
                 as tokens_in_last_30d,
               coalesce(sum(ue.tokens_out) filter (where ue.occurred_at >= now() - interval '30 days'), 0)::bigint
                 as tokens_out_last_30d,
               coalesce(sum(ue.cost_usd) filter (where ue.occurred_at >= now() - interval '30 days'), 0)
                 as cost_usd_last_30d,
               count(*) filter (where ue.occurred_at >= date_trunc('month', now() at time zone 'UTC') at time zone 'UTC')
                 as events_this_month,
               coalesce(sum(ue.tokens_in + ue.tokens_out)
                 filter (where ue.occurred_at >= date_trunc('month', now() at time zone 'UTC') at time zone 'UTC'), 0)::bigint
                 as tokens_this_month,
               coalesce(sum(ue.cost_usd)
                 filter (where ue.occurred_at >= date_trunc('month', now() at time zone 'UTC') at time zone 'UTC'), 0)
                 as cost_usd_this_month,
               max(ue.occurred_at) as last_usage_at
        from public.usage_event ue
        where ue.occurred_at >= least(now() - interval '30 days',
                                      date_trunc('month', now() at time zone 'UTC') at time zone 'UTC')
        group by ue.tenant_id
      ) m on m.tenant_id = t.id;
      create unique index tenant_usage_summary_key on tenant_usage_summary (tenant_id);

      alter materialized view entity_stats owner to promptcraft_system;
      alter materialized view tenant_usage_summary owner to promptcraft_system;
      revoke all on entity_stats, tenant_usage_summary from public;

      create view current_tenant_entity_stats with (security_barrier = true) as
      select s.tenant_id, s.entity_id, s.entity_type, s.version_count, s.created_at, s.updated_at, s.deleted,
             s.favorite_count, s.uses_last_30d, s.views_last_30d, s.renders_last_30d, s.executions_last_30d,
             s.tokens_in_last_30d, s.tokens_out_last_30d, s.cost_usd_last_30d, s.last_used_at
      from public.entity_stats s
      where s.tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid;

      create view current_tenant_usage_summary with (security_barrier = true) as
      select s.tenant_id, s.plan, s.entity_count, s.user_count, s.events_last_30d, s.tokens_in_last_30d,
             s.tokens_out_last_30d, s.tokens_last_30d, s.cost_usd_last_30d, s.events_this_month,
             s.tokens_this_month, s.cost_usd_this_month, s.last_usage_at
      from public.tenant_usage_summary s
      where s.tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid;

      alter view current_tenant_entity_stats owner to promptcraft_system;
      alter view current_tenant_usage_summary owner to promptcraft_system;
      grant select on current_tenant_entity_stats, current_tenant_usage_summary to promptcraft_analytics;

      create table read_model_refresh (
        view_name text not null,
        last_started_at timestamptz,
        last_refreshed_at timestamptz,
        last_duration_ms double precision,
        last_row_count bigint,
        last_concurrently boolean,
        last_refreshed_by text,
        refresh_count bigint not null default 0,
        constraint read_model_refresh_pkey primary key (view_name),
        constraint read_model_refresh_view_name_check check (view_name in ('entity_stats', 'tenant_usage_summary')),
        constraint read_model_refresh_count_check check (refresh_count >= 0)
      );
      comment on table read_model_refresh is
        'Freshness of the read models: last_started_at is the snapshot time of the data, last_refreshed_at when the refresh ended (null = never refreshed since creation).';
      insert into read_model_refresh (view_name) values ('entity_stats'), ('tenant_usage_summary');
      grant select on read_model_refresh to promptcraft_analytics;
      grant select, update on read_model_refresh to promptcraft_system;

      create function refresh_read_model(p_view text default null, p_concurrently boolean default true)
      returns table (view_name text, status text, refreshed_at timestamptz, duration_ms double precision,
                     row_count bigint)
      language plpgsql volatile security definer
      set search_path = pg_catalog, public
      as $fn$
      #variable_conflict use_column
      declare
        v_name text;
        v_started timestamptz;
        v_ended timestamptz;
        v_rows bigint;
      begin
        if p_view is not null and p_view not in ('entity_stats', 'tenant_usage_summary') then
          raise exception 'unknown read model %', p_view using errcode = '22023';
        end if;
        if not pg_try_advisory_xact_lock(7243002) then
          -- Another replica is refreshing right now: its result will be as fresh as ours.
          return query
            select r.view_name, 'skipped'::text, null::timestamptz, null::double precision, null::bigint
            from public.read_model_refresh r
            where p_view is null or r.view_name = p_view
            order by r.view_name;
          return;
        end if;
        foreach v_name in array array['entity_stats', 'tenant_usage_summary'] loop
          continue when p_view is not null and v_name <> p_view;
          v_started := clock_timestamp();
          if coalesce(p_concurrently, true) then
            execute format('refresh materialized view concurrently public.%I', v_name);
          else
            execute format('refresh materialized view public.%I', v_name);
          end if;
          execute format('select count(*) from public.%I', v_name) into v_rows;
          v_ended := clock_timestamp();
          update public.read_model_refresh r
          set last_started_at = v_started,
              last_refreshed_at = v_ended,
              last_duration_ms = extract(epoch from (v_ended - v_started)) * 1000,
              last_row_count = v_rows,
              last_concurrently = coalesce(p_concurrently, true),
              last_refreshed_by = session_user,
              refresh_count = r.refresh_count + 1
          where r.view_name = v_name;
          view_name := v_name;
          status := 'refreshed';
          refreshed_at := v_ended;
          duration_ms := extract(epoch from (v_ended - v_started)) * 1000;
          row_count := v_rows;
          return next;
        end loop;
      end
      $fn$;
      alter function refresh_read_model(text, boolean) owner to promptcraft_system;
      comment on function refresh_read_model(text, boolean) is
        'Refreshes one or both read models (concurrently by default) under an advisory lock and records the time in read_model_refresh.';
      revoke execute on function refresh_read_model(text, boolean) from public;
      grant execute on function refresh_read_model(text, boolean) to promptcraft_analytics;
    `);
  },
  async down(knex) {
    await knex.raw(`
      drop function if exists refresh_read_model(text, boolean);
      drop table if exists read_model_refresh;
      drop view if exists current_tenant_usage_summary;
      drop view if exists current_tenant_entity_stats;
      drop materialized view if exists tenant_usage_summary;
      drop materialized view if exists entity_stats;
      revoke select (plan) on tenant from promptcraft_system;
      revoke select on usage_event from promptcraft_system;
      revoke select (tenant_id, entity_id) on favorite from promptcraft_system;
      revoke select (tenant_id, id, entity_type, current_version, created_at, updated_at, deleted_at)
        on entity from promptcraft_system;
      drop policy if exists usage_event_system_read on usage_event;
      drop policy if exists favorite_system_read on favorite;
      drop policy if exists entity_system_read on entity;
    `);
  },
};
