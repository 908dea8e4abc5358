import type { Migration } from "@promptcraft/db";

/**
 * The seed's `get_entity_graph`, fixed (tenant-scoped, cycle-safe, bounded), and the cycle check the
 * graph service runs before adding a depends_on / part_of edge.
 *
 *   select depth, source_id, target_id, relationship_type, strength
 *   from get_entity_graph('<tenant>', '<entity>', 2);                      -- outbound, all types
 *   select ... from get_entity_graph('<tenant>', '<entity>', 5, 'inbound', array['depends_on']);  -- impact
 *
 * Cycle guard: a walk never continues from a node already on its path (the edge that closes a cycle is
 * reported, with closes_cycle = true), and depth is capped at 10, so the recursion terminates on any
 * graph. Each edge is reported once, at the smallest depth it was reached.
 *
 * Adding an acyclic edge safely under concurrency (two transactions could each add one half of a
 * cycle): in the inserting transaction, first
 *   select pg_advisory_xact_lock(hashtextextended(tenant_id::text || ':' || relationship_type, 0));
 * then `relationship_would_cycle(...)`, then insert.
 */
export const createGraphFunctions: Migration = {
  name: "20261125093100_create_graph_functions",
  async up(knex) {
    await knex.raw(`
      create function get_entity_graph(
        p_tenant_id uuid,
        p_entity_id uuid,
        p_max_depth integer default 2,
        p_direction text default 'outbound',
        p_types text[] default null)
      returns table (
        depth integer, relationship_id uuid, source_id uuid, target_id uuid, relationship_type text,
        strength double precision, target_version integer, target_label text, node_id uuid, path uuid[],
        closes_cycle boolean)
      language plpgsql stable security invoker
      set search_path = pg_catalog, public
      as $fn$
      #variable_conflict use_column
      begin
        if p_direction is null or p_direction not in ('outbound', 'inbound', 'both') then
          raise exception 'direction must be outbound, inbound or both' using errcode = '22023';
        end if;
        if p_max_depth is null or p_max_depth < 1 then
          raise exception 'depth must be at least 1' using errcode = '22023';
        end if;
        return query
        with recursive walk (depth, relationship_id, source_id, target_id, relationship_type, strength,
                             target_version, target_label, node_id, path, closes_cycle) as (
          select 1, r.id, r.source_id, r.target_id, r.relationship_type, r.strength, r.target_version,
                 r.target_label, n.next_id, array[p_entity_id, n.next_id], false
          from public.relationship r
          cross join lateral (select case when r.source_id = p_entity_id then r.target_id else r.source_id end as next_id) n
          where r.tenant_id = p_tenant_id and r.deleted_at is null
            and (p_types is null or r.relationship_type = any (p_types))
            and ((p_direction <> 'inbound' and r.source_id = p_entity_id)
                 or (p_direction <> 'outbound' and r.target_id = p_entity_id))
          union all
          select w.depth + 1, r.id, r.source_id, r.target_id, r.relationship_type, r.strength, r.target_version,
                 r.target_label, n.next_id, w.path || n.next_id, n.next_id = any (w.path)
          from walk w
          join public.relationship r
            on r.tenant_id = p_tenant_id and r.deleted_at is null
           and r.id <> w.relationship_id
           and (p_types is null or r.relationship_type = any (p_types))
           and ((p_direction <> 'inbound' and r.source_id = w.node_id)
                or (p_direction <> 'outbound' and r.target_id = w.node_id))
          cross join lateral (select case when r.source_id = w.node_id then r.target_id else r.source_id end as next_id) n
          -- Cycle guard: an edge back to a node already on the path is reported (closes_cycle) but
          -- never followed.
          where w.depth < least(p_max_depth, 10) and not w.closes_cycle
        )
        select d.depth, d.relationship_id, d.source_id, d.target_id, d.relationship_type, d.strength,
               d.target_version, d.target_label, d.node_id, d.path, d.closes_cycle
        from (
          select distinct on (w.relationship_id) w.depth, w.relationship_id, w.source_id, w.target_id,
                 w.relationship_type, w.strength, w.target_version, w.target_label, w.node_id, w.path,
                 w.closes_cycle
          from walk w
          order by w.relationship_id, w.depth, w.closes_cycle
        ) d
        order by d.depth, d.relationship_type, d.target_id;
      end
      $fn$;
      comment on function get_entity_graph(uuid, uuid, integer, text, text[]) is
        'Edges reachable from an entity within p_max_depth (<= 10) hops, outbound/inbound/both, optionally of given types; each edge once, at its smallest depth.';

      create function relationship_would_cycle(p_tenant_id uuid, p_source_id uuid, p_target_id uuid, p_type text)
      returns boolean
      language sql stable security invoker
      set search_path = pg_catalog, public
      as $fn$
        with recursive reach (node_id) as (
          select p_target_id
          union
          select r.target_id
          from reach
          join public.relationship r
            on r.tenant_id = p_tenant_id and r.source_id = reach.node_id
           and r.relationship_type = p_type and r.deleted_at is null
        )
        select p_source_id = p_target_id or exists (select 1 from reach where reach.node_id = p_source_id)
      $fn$;
      comment on function relationship_would_cycle(uuid, uuid, uuid, text) is
        'True when adding source -> target of this type would close a cycle (target already reaches source).';

      revoke execute on function get_entity_graph(uuid, uuid, integer, text, text[]) from public;
      revoke execute on function relationship_would_cycle(uuid, uuid, uuid, text) from public;
      grant execute on function get_entity_graph(uuid, uuid, integer, text, text[]) to promptcraft_graph;
      grant execute on function relationship_would_cycle(uuid, uuid, uuid, text) to promptcraft_graph;
    `);
  },
  async down(knex) {
    await knex.raw(`
      drop function if exists relationship_would_cycle(uuid, uuid, uuid, text);
      drop function if exists get_entity_graph(uuid, uuid, integer, text, text[]);
    `);
  },
};
