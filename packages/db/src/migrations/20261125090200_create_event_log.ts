import type { Migration } from "../migrate.js";

/**
 * The shared event log (brief §4.6) and the platform's own partition maintenance (§4.7: pg_partman is
 * optional, never required).
 *
 * `event` is range-partitioned by month on `occurred_at`. Its primary key is
 * (tenant_id, id, occurred_at): it starts with the tenant (Citus) and must contain the partition key
 * (a partitioned table cannot have a unique constraint without it — one of the seed's defects).
 * Readers that tail the log order by (transaction_id, id) and read only rows whose transaction_id is
 * below `pg_snapshot_xmin(pg_current_snapshot())`: every transaction below that horizon has ended, so
 * no late commit can appear behind the cursor (the seed's sequence-ordered reader skipped them).
 *
 * Every service role may INSERT (each appends in the same transaction as its change); only
 * promptcraft_analytics may SELECT, and row-level security restricts it to the tenant of the
 * transaction. Nobody may UPDATE or DELETE: the log is immutable; old months go by retention (drop or
 * detach a partition), which only the table owner does, through `run_partition_maintenance`.
 *
 * `partition_policy` says, per partitioned table, the granularity, how many partitions to keep created
 * ahead (and behind, for late arrivals) and the retention. `create_time_partitions` and
 * `run_partition_maintenance` are SECURITY DEFINER (partition DDL needs the table owner), pinned to
 * `pg_catalog, public`, limited to the tables named in `partition_policy`, executable by
 * promptcraft_analytics only. No default partition: a row outside the created range fails loudly
 * instead of landing in a default partition that would later block creating the partition it belongs
 * in. Partition names follow the seed: `event_2026_11`, `usage_event_2026_11_25` (UTC).
 */
export const createEventLog: Migration = {
  name: "20261125090200_create_event_log",
  async up(knex) {
    await knex.raw(`
      create table partition_policy (
        parent_table text not null,
        granularity text not null,
        premake integer not null,
        premake_behind integer not null default 1,
        retention interval,
        retention_action text not null default 'drop',
        updated_at timestamptz not null default now(),
        constraint partition_policy_pkey primary key (parent_table),
        constraint partition_policy_granularity_check check (granularity in ('day', 'month')),
        constraint partition_policy_premake_check check (premake between 1 and 366),
        constraint partition_policy_premake_behind_check check (premake_behind between 0 and 366),
        constraint partition_policy_retention_check check (retention is null or retention > interval '0'),
        constraint partition_policy_retention_action_check check (retention_action in ('drop', 'detach'))
      );
      comment on table partition_policy is
        'Per partitioned table: granularity, partitions kept ahead/behind, retention (null = keep forever). Read by run_partition_maintenance().';

      create sequence event_id_seq as bigint;

      create table event (
        tenant_id uuid not null,
        id bigint not null default nextval('event_id_seq'),
        occurred_at timestamptz not null default now(),
        transaction_id xid8 not null default pg_current_xact_id(),
        aggregate_type text not null,
        aggregate_id uuid,
        aggregate_version bigint,
        event_type text not null,
        payload jsonb not null default '{}'::jsonb,
        actor_type text not null default 'user',
        actor_id uuid,
        request_id text,
        recorded_by text not null default current_user,
        constraint event_pkey primary key (tenant_id, id, occurred_at),
        constraint event_aggregate_type_check check (aggregate_type ~ '^[a-z][a-z0-9_]{0,62}$'),
        constraint event_event_type_check check (event_type ~ '^[a-z][a-z0-9_.]{0,126}$'),
        constraint event_actor_type_check check (actor_type in ('user', 'api_key', 'service', 'system')),
        constraint event_payload_check check (jsonb_typeof(payload) = 'object'),
        constraint event_request_id_check check (request_id is null or char_length(request_id) <= 200)
      ) partition by range (occurred_at);
      alter sequence event_id_seq owned by event.id;

      comment on column event.transaction_id is
        'Writer''s transaction id. Tail with: where transaction_id < pg_snapshot_xmin(pg_current_snapshot()) and (transaction_id, id) > (cursor) order by transaction_id, id.';
      comment on column event.recorded_by is 'Database role that appended the row (the service).';

      create index event_tenant_tail_idx on event (tenant_id, transaction_id, id);
      create index event_tenant_time_idx on event (tenant_id, occurred_at);
      create index event_aggregate_idx on event (tenant_id, aggregate_type, aggregate_id, occurred_at);

      alter table event enable row level security;
      alter table event force row level security;
      create policy event_tenant_isolation on event
        using (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid)
        with check (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid);

      grant insert on event to promptcraft_identity, promptcraft_content, promptcraft_graph,
        promptcraft_search, promptcraft_analytics;
      grant usage on sequence event_id_seq to promptcraft_identity, promptcraft_content, promptcraft_graph,
        promptcraft_search, promptcraft_analytics;
      grant select on event to promptcraft_analytics;
      grant select on partition_policy to promptcraft_analytics;
      grant update (premake, premake_behind, retention, retention_action, updated_at) on partition_policy
        to promptcraft_analytics;

      create function create_time_partitions(p_parent text, p_from timestamptz, p_to timestamptz)
      returns setof text
      language plpgsql
      security definer
      set search_path = pg_catalog, public
      as $fn$
      declare
        v_granularity text;
        v_step interval;
        v_format text;
        v_start timestamptz;
        v_end timestamptz;
        v_name text;
      begin
        select pp.granularity into v_granularity from public.partition_policy pp where pp.parent_table = p_parent;
        if not found then
          raise exception 'no partition policy for table %', p_parent using errcode = '22023';
        end if;
        if p_to - p_from > interval '3 years' then
          raise exception 'refusing to create partitions for more than 3 years at once' using errcode = '22023';
        end if;
        if v_granularity = 'day' then
          v_step := interval '1 day';
          v_format := 'YYYY_MM_DD';
        else
          v_step := interval '1 month';
          v_format := 'YYYY_MM';
        end if;
        -- Boundaries are UTC days/months whatever the session's time zone.
        v_start := date_trunc(v_granularity, p_from at time zone 'UTC') at time zone 'UTC';
        while v_start < p_to loop
          v_end := ((v_start at time zone 'UTC') + v_step) at time zone 'UTC';
          v_name := p_parent || '_' || to_char(v_start at time zone 'UTC', v_format);
          if to_regclass(format('public.%I', v_name)) is null then
            execute format('create table public.%I partition of public.%I for values from (%L) to (%L)',
                           v_name, p_parent, v_start, v_end);
            -- Rows are reached through the parent (whose policies apply); RLS on the partition itself
            -- denies anyone who would address it directly.
            execute format('alter table public.%I enable row level security', v_name);
            execute format('alter table public.%I force row level security', v_name);
            return next v_name;
          end if;
          v_start := v_end;
        end loop;
      end
      $fn$;
      comment on function create_time_partitions(text, timestamptz, timestamptz) is
        'Creates the missing UTC day/month partitions of a table listed in partition_policy covering [p_from, p_to). Returns the names created.';

      create function run_partition_maintenance(p_parent text default null, p_now timestamptz default now())
      returns table (parent_table text, action text, partition_name text)
      language plpgsql
      security definer
      set search_path = pg_catalog, public
      as $fn$
      declare
        v_policy record;
        v_step interval;
        v_name text;
        v_part record;
        v_upper timestamptz;
      begin
        -- One maintainer at a time across replicas; the others wait and then find nothing to do.
        perform pg_advisory_xact_lock(7243001);
        for v_policy in
          select pp.parent_table, pp.granularity, pp.premake, pp.premake_behind, pp.retention, pp.retention_action
          from public.partition_policy pp
          where p_parent is null or pp.parent_table = p_parent
          order by pp.parent_table
        loop
          v_step := case v_policy.granularity when 'day' then interval '1 day' else interval '1 month' end;
          for v_name in
            select public.create_time_partitions(v_policy.parent_table,
                                                 p_now - v_policy.premake_behind * v_step,
                                                 p_now + (v_policy.premake + 1) * v_step)
          loop
            parent_table := v_policy.parent_table; action := 'created'; partition_name := v_name;
            return next;
          end loop;
          if v_policy.retention is not null then
            for v_part in
              select c.relname, pg_get_expr(c.relpartbound, c.oid) as bound
              from pg_inherits i
              join pg_class c on c.oid = i.inhrelid
              where i.inhparent = format('public.%I', v_policy.parent_table)::regclass
              order by c.relname
            loop
              v_upper := (regexp_match(v_part.bound, 'TO \\(''([^'']+)''\\)'))[1]::timestamptz;
              continue when v_upper is null or v_upper > p_now - v_policy.retention;
              if v_policy.retention_action = 'detach' then
                execute format('alter table public.%I detach partition public.%I', v_policy.parent_table, v_part.relname);
                action := 'detached';
              else
                execute format('drop table public.%I', v_part.relname);
                action := 'dropped';
              end if;
              parent_table := v_policy.parent_table; partition_name := v_part.relname;
              return next;
            end loop;
          end if;
        end loop;
      end
      $fn$;
      comment on function run_partition_maintenance(text, timestamptz) is
        'Creates partitions ahead/behind and drops or detaches those older than the retention of partition_policy. Run by the analytics service on start and on a schedule.';

      revoke execute on function create_time_partitions(text, timestamptz, timestamptz) from public;
      revoke execute on function run_partition_maintenance(text, timestamptz) from public;
      grant execute on function create_time_partitions(text, timestamptz, timestamptz) to promptcraft_analytics;
      grant execute on function run_partition_maintenance(text, timestamptz) to promptcraft_analytics;

      insert into partition_policy (parent_table, granularity, premake, premake_behind, retention)
      values ('event', 'month', 3, 1, null);
      select parent_table, action, partition_name from run_partition_maintenance('event');
    `);
  },
  async down(knex) {
    await knex.raw(`
      drop function if exists run_partition_maintenance(text, timestamptz);
      drop function if exists create_time_partitions(text, timestamptz, timestamptz);
      drop table if exists event;
      drop table if exists partition_policy;
    `);
  },
};
