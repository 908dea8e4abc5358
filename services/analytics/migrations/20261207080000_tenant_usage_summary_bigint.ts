import type { Migration } from "@promptcraft/db";

/**
 * `tenant_usage_summary.tokens_this_month` summed `tokens_in + tokens_out`, an integer + integer
 * addition evaluated per row before the sum: one valid event (each side up to 2^31 − 1, as the
 * contract's int32 fields allow) whose two sides together pass 2^31 − 1 made the refresh fail with
 * "integer out of range" for every tenant. The view is recreated with the addition in bigint; the
 * rest of its definition, its unique index (REFRESH … CONCURRENTLY needs it), owner, grants and the
 * security-barrier view over it are as before. `entity_stats` and the rollups only sum single
 * integer columns (`sum(integer)` is bigint), so they were never exposed.
 *
 * The view is created with data, so its bookkeeping row says it is fresh as of this migration.
 */
function tenantUsageSummarySql(monthTokens: string): string {
  return `
    drop view current_tenant_usage_summary;
    drop materialized view tenant_usage_summary;

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
             coalesce(sum(${monthTokens})
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
    alter materialized view tenant_usage_summary owner to promptcraft_system;
    revoke all on tenant_usage_summary from public;

    create view current_tenant_usage_summary with (security_barrier = true) as
    select s.tenant_id, s.plan, s.entity_count, s.user_count, s.events_last_30d, s.tokens_in_last_30d,
           s.tokens_out_last_30d, s.tokens_last_30d, s.cost_usd_last_30d, s.events_this_month,
           s.tokens_this_month, s.cost_usd_this_month, s.last_usage_at
    from public.tenant_usage_summary s
    where s.tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid;
    alter view current_tenant_usage_summary owner to promptcraft_system;
    grant select on current_tenant_usage_summary to promptcraft_analytics;

    update read_model_refresh
    set last_started_at = now(), last_refreshed_at = clock_timestamp(),
        last_duration_ms = extract(epoch from (clock_timestamp() - now())) * 1000,
        last_row_count = (select count(*) from tenant_usage_summary),
        last_concurrently = false, last_refreshed_by = session_user,
        last_error = '', last_error_at = null
    where view_name = 'tenant_usage_summary';
  `;
}

export const tenantUsageSummaryBigint: Migration = {
  name: "20261207080000_tenant_usage_summary_bigint",
  async up(knex) {
    await knex.raw(tenantUsageSummarySql("ue.tokens_in::bigint + ue.tokens_out::bigint"));
  },
  async down(knex) {
    await knex.raw(tenantUsageSummarySql("ue.tokens_in + ue.tokens_out"));
  },
};
