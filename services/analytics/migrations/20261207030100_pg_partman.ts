import type { Migration } from "@promptcraft/db";

/**
 * pg_partman, when the server offers it, for the partitions of `event` (monthly) and `usage_event`
 * (daily): it creates them ahead and applies the retention; the built-in maintainer stays for
 * servers without it and for the embedded engine (brief §4.7: optional, never required).
 *
 * - The extension is created (schema `partman`) only if `pg_available_extensions` lists it and the
 *   migrating role may create it (a superuser); one already created by a DBA, in any schema, is used.
 *   Otherwise nothing changes here and the built-in maintainer keeps both tables.
 * - Adoption of a table: its partitions are renamed to pg_partman's names (`<parent>_p` + the
 *   version's datetime format: `YYYY_MM_DD` / `YYYY_MM` in 4.x, `YYYYMMDD` in 5.x) — pg_partman finds
 *   and orders children by name, and would otherwise try to create partitions overlapping them —
 *   then `create_parent` (native/range, from the oldest partition, `premake` of `partition_policy`,
 *   no jobmon), with `infinite_time_partitions` (partitions are made ahead whether or not data
 *   arrives), the retention of `partition_policy`, and no default partition (4.x always makes one: it
 *   is dropped; a row outside every partition must fail, as with the built-in maintainer).
 * - `run_partition_maintenance` (replaced, same signature and result) dispatches per table: a table
 *   pg_partman manages gets `partition_policy` copied into `part_config`, its partitions behind
 *   (late arrivals; pg_partman makes only ahead) from `create_time_partitions`, and then
 *   `partman.run_maintenance(table)` — the function, not `run_maintenance_proc`, which commits per
 *   table and so could neither run under the advisory lock's transaction nor be rolled back by a dry
 *   run. Its actions are read back as the difference of the partitions before and after. pg_partman
 *   creates ahead as of the real time; its retention (`drop_partition_time`) is also applied as of
 *   `p_now`, so a run "as of" a later time drops what the built-in maintainer would.
 *   It runs with `timezone = UTC` so that pg_partman's days and months are UTC ones.
 * - `partition_child_name(table, start)`: the name a partition gets (pg_partman's when it manages the
 *   table), used by `create_time_partitions` (replaced) so both makers agree.
 * - `partition_engine(table)`: 'pg_partman' or 'built_in', for GetPartitionMaintenanceStatus.
 *
 * Partitions pg_partman creates get row-level security enabled and forced as the built-in ones do
 * (rows are reached through the parent; nobody addresses a partition directly).
 */
export const pgPartman: Migration = {
  name: "20261207030100_pg_partman",
  async up(knex) {
    await knex.raw(`
      create function partman_schema_for(p_parent text) returns text
      language plpgsql stable security definer
      set search_path = pg_catalog
      as $fn$
      declare
        v_schema text;
        v_managed boolean;
      begin
        select n.nspname into v_schema
        from pg_extension e join pg_namespace n on n.oid = e.extnamespace
        where e.extname = 'pg_partman';
        if v_schema is null then
          return null;
        end if;
        execute format('select exists (select 1 from %I.part_config where parent_table = $1)', v_schema)
          into v_managed using 'public.' || p_parent;
        return case when v_managed then v_schema end;
      end
      $fn$;
      comment on function partman_schema_for(text) is
        'The schema of pg_partman when it manages public.<p_parent>, else null (the built-in maintainer does).';

      create function partition_engine(p_parent text) returns text
      language sql stable
      set search_path = pg_catalog, public
      as $fn$ select case when public.partman_schema_for(p_parent) is null then 'built_in' else 'pg_partman' end $fn$;
      comment on function partition_engine(text) is 'Who maintains the partitions of public.<p_parent>: pg_partman or built_in.';

      create function partition_child_name(p_parent text, p_start timestamptz) returns text
      language plpgsql stable security definer
      set search_path = pg_catalog, public
      as $fn$
      declare
        v_schema text := public.partman_schema_for(p_parent);
        v_format text;
      begin
        if v_schema is not null then
          execute format('select datetime_string from %I.part_config where parent_table = $1', v_schema)
            into v_format using 'public.' || p_parent;
          return p_parent || '_p' || to_char(p_start at time zone 'UTC', v_format);
        end if;
        select case pp.granularity when 'day' then 'YYYY_MM_DD' else 'YYYY_MM' end into v_format
        from public.partition_policy pp where pp.parent_table = p_parent;
        return p_parent || '_' || to_char(p_start at time zone 'UTC', v_format);
      end
      $fn$;
      comment on function partition_child_name(text, timestamptz) is
        'Name of the partition of public.<p_parent> starting at p_start (UTC): pg_partman''s naming when it manages the table, else <parent>_YYYY_MM[_DD].';

      create or replace function create_time_partitions(p_parent text, p_from timestamptz, p_to timestamptz)
      returns setof text
      language plpgsql
      security definer
      set search_path = pg_catalog, public
      as $fn$
      declare
        v_granularity text;
        v_step interval;
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
        v_step := case v_granularity when 'day' then interval '1 day' else interval '1 month' end;
        -- Boundaries are UTC days/months whatever the session's time zone.
        v_start := date_trunc(v_granularity, p_from at time zone 'UTC') at time zone 'UTC';
        while v_start < p_to loop
          v_end := ((v_start at time zone 'UTC') + v_step) at time zone 'UTC';
          v_name := public.partition_child_name(p_parent, v_start);
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

      create or replace function run_partition_maintenance(p_parent text default null, p_now timestamptz default now())
      returns table (parent_table text, action text, partition_name text)
      language plpgsql
      security definer
      set search_path = pg_catalog, public
      set timezone = 'UTC'
      as $fn$
      declare
        v_policy record;
        v_step interval;
        v_name text;
        v_part record;
        v_upper timestamptz;
        v_partman text;
        v_before text[];
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
          v_partman := public.partman_schema_for(v_policy.parent_table);
          for v_name in
            select public.create_time_partitions(v_policy.parent_table,
                                                 p_now - v_policy.premake_behind * v_step,
                                                 -- pg_partman makes those ahead itself.
                                                 case when v_partman is null then p_now + (v_policy.premake + 1) * v_step else p_now end)
          loop
            parent_table := v_policy.parent_table; action := 'created'; partition_name := v_name;
            return next;
          end loop;

          if v_partman is not null then
            select coalesce(array_agg(c.relname::text), '{}') into v_before
            from pg_inherits i join pg_class c on c.oid = i.inhrelid
            where i.inhparent = format('public.%I', v_policy.parent_table)::regclass;
            execute format('update %I.part_config set premake = $1, retention = $2, retention_keep_table = $3,
                                   infinite_time_partitions = true where parent_table = $4', v_partman)
              using v_policy.premake, v_policy.retention, v_policy.retention_action = 'detach', 'public.' || v_policy.parent_table;
            begin
              execute format('select %I.run_maintenance(p_parent_table := $1, p_jobmon := false)', v_partman)
                using 'public.' || v_policy.parent_table;
              -- run_maintenance applies the retention as of the real time; as of p_now too (a no-op
              -- unless p_now is later: a run "as of" a later time, as tests do).
              if v_policy.retention is not null then
                execute format('select %I.drop_partition_time(p_parent_table := $1, p_reference_timestamp := $2)', v_partman)
                  using 'public.' || v_policy.parent_table, p_now;
              end if;
            exception when others then
              -- pg_partman re-raises every error as P0001: give a lock timeout its code back, so the
              -- service answers it as the built-in maintainer's (a busy table, retry later).
              if sqlerrm ~* 'lock timeout|could not obtain lock' then
                raise exception 'pg_partman: %', split_part(sqlerrm, E'\\n', 1) using errcode = '55P03';
              end if;
              raise;
            end;
            for v_part in
              select c.relname::text as name
              from pg_inherits i join pg_class c on c.oid = i.inhrelid
              where i.inhparent = format('public.%I', v_policy.parent_table)::regclass
                and not c.relname::text = any(v_before)
              order by 1
            loop
              execute format('alter table public.%I enable row level security', v_part.name);
              execute format('alter table public.%I force row level security', v_part.name);
              parent_table := v_policy.parent_table; action := 'created'; partition_name := v_part.name;
              return next;
            end loop;
            for v_part in
              select b.name, (to_regclass(format('public.%I', b.name)) is null) as gone
              from unnest(v_before) as b(name)
              where not exists (select 1 from pg_inherits i join pg_class c on c.oid = i.inhrelid
                                where i.inhparent = format('public.%I', v_policy.parent_table)::regclass and c.relname = b.name)
              order by 1
            loop
              parent_table := v_policy.parent_table; action := case when v_part.gone then 'dropped' else 'detached' end;
              partition_name := v_part.name;
              return next;
            end loop;
            continue;
          end if;

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
        'Creates partitions ahead/behind and drops or detaches those older than the retention of partition_policy: through pg_partman for the tables it manages, else itself. Run by the analytics service on start and on a schedule.';

      revoke execute on function partman_schema_for(text) from public;
      revoke execute on function partition_child_name(text, timestamptz) from public;
      grant execute on function partman_schema_for(text) to promptcraft_analytics;
      grant execute on function partition_engine(text) to promptcraft_analytics;
      grant execute on function partition_child_name(text, timestamptz) to promptcraft_analytics;

      do $adopt$
      declare
        v_schema text;
        v_version text;
        v_policy record;
        v_part record;
        v_format text;
        v_oldest timestamptz;
      begin
        select n.nspname, e.extversion into v_schema, v_version
        from pg_extension e join pg_namespace n on n.oid = e.extnamespace where e.extname = 'pg_partman';
        if v_schema is null then
          if not exists (select 1 from pg_available_extensions where name = 'pg_partman') then
            return;
          end if;
          if not (select rolsuper from pg_roles where rolname = current_user) then
            raise notice 'pg_partman is available but % may not create it: the built-in partition maintainer stays', current_user;
            return;
          end if;
          create schema if not exists partman;
          create extension pg_partman schema partman;
          select n.nspname, e.extversion into v_schema, v_version
          from pg_extension e join pg_namespace n on n.oid = e.extnamespace where e.extname = 'pg_partman';
        end if;
        -- pg_partman's days and months are those of the session's time zone.
        perform set_config('timezone', 'UTC', true);
        for v_policy in
          select pp.parent_table, pp.granularity, pp.premake, pp.retention, pp.retention_action
          from public.partition_policy pp
          where pp.parent_table in ('event', 'usage_event') and public.partman_schema_for(pp.parent_table) is null
          order by 1
        loop
          v_format := case when split_part(v_version, '.', 1)::int >= 5 then 'YYYYMMDD'
                           when v_policy.granularity = 'day' then 'YYYY_MM_DD' else 'YYYY_MM' end;
          v_oldest := null;
          for v_part in
            select c.relname::text as name,
                   (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\)'))[1]::timestamptz as start
            from pg_inherits i join pg_class c on c.oid = i.inhrelid
            where i.inhparent = format('public.%I', v_policy.parent_table)::regclass
          loop
            continue when v_part.start is null;
            v_oldest := least(v_oldest, v_part.start);
            if v_part.name <> v_policy.parent_table || '_p' || to_char(v_part.start at time zone 'UTC', v_format) then
              execute format('alter table public.%I rename to %I', v_part.name,
                             v_policy.parent_table || '_p' || to_char(v_part.start at time zone 'UTC', v_format));
            end if;
          end loop;
          if split_part(v_version, '.', 1)::int >= 5 then
            execute format('select %I.create_parent(p_parent_table := $1, p_control := $2, p_interval := $3, p_type := ''range'',
                                                   p_premake := $4, p_start_partition := $5, p_default_table := false, p_jobmon := false)', v_schema)
              using 'public.' || v_policy.parent_table, 'occurred_at', '1 ' || v_policy.granularity, v_policy.premake,
                    to_char(coalesce(v_oldest, now()), 'YYYY-MM-DD HH24:MI:SSOF');
          else
            execute format('select %I.create_parent(p_parent_table := $1, p_control := $2, p_type := ''native'', p_interval := $3,
                                                   p_premake := $4, p_start_partition := $5, p_jobmon := false)', v_schema)
              using 'public.' || v_policy.parent_table, 'occurred_at', '1 ' || v_policy.granularity, v_policy.premake,
                    to_char(coalesce(v_oldest, now()), 'YYYY-MM-DD HH24:MI:SSOF');
          end if;
          -- No default partition (4.x makes one): a row outside every partition must fail.
          if to_regclass(format('public.%I', v_policy.parent_table || '_default')) is not null then
            execute format('drop table public.%I', v_policy.parent_table || '_default');
          end if;
          execute format('update %I.part_config set infinite_time_partitions = true, retention = $1, retention_keep_table = $2
                          where parent_table = $3', v_schema)
            using v_policy.retention, v_policy.retention_action = 'detach', 'public.' || v_policy.parent_table;
          -- Partitions create_parent made: row-level security like the others.
          for v_part in
            select c.relname::text as name
            from pg_inherits i join pg_class c on c.oid = i.inhrelid
            where i.inhparent = format('public.%I', v_policy.parent_table)::regclass and not c.relforcerowsecurity
          loop
            execute format('alter table public.%I enable row level security', v_part.name);
            execute format('alter table public.%I force row level security', v_part.name);
          end loop;
        end loop;
      end
      $adopt$;
    `);
  },
  async down(knex) {
    await knex.raw(`
      do $unadopt$
      declare
        v_schema text;
        v_part record;
        v_parent text;
      begin
        for v_parent in select unnest(array['event', 'usage_event']) loop
          v_schema := public.partman_schema_for(v_parent);
          continue when v_schema is null;
          execute format('delete from %I.part_config where parent_table = $1', v_schema) using 'public.' || v_parent;
          execute format('drop table if exists %I.%I', v_schema, 'template_public_' || v_parent);
          for v_part in
            select c.relname::text as name,
                   (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\)'))[1]::timestamptz as start
            from pg_inherits i join pg_class c on c.oid = i.inhrelid
            where i.inhparent = format('public.%I', v_parent)::regclass
          loop
            continue when v_part.start is null;
            execute format('alter table public.%I rename to %I', v_part.name, public.partition_child_name(v_parent, v_part.start));
          end loop;
        end loop;
      end
      $unadopt$;
    `);
    // The bodies these replaced (core migration 20261125090200), then the helpers only they used.
    await knex.raw(`
      create or replace function create_time_partitions(p_parent text, p_from timestamptz, p_to timestamptz)
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
      create or replace function run_partition_maintenance(p_parent text default null, p_now timestamptz default now())
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
      drop function if exists partition_child_name(text, timestamptz);
      drop function if exists partition_engine(text);
      drop function if exists partman_schema_for(text);
    `);
  },
};
