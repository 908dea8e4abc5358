import type { Migration } from "@promptcraft/db";

/**
 * The seed's `get_entity_history`, fixed: it takes the tenant (Citus routes on it; row-level security
 * applies as well, the function being SECURITY INVOKER), reads the immutable version rows, and adds
 * which labels point at each version now.
 *
 *   select version, title, valid_from, valid_to, is_current, labels
 *   from get_entity_history('<tenant uuid>', '<entity uuid>');
 */
export const createHistoryFunctions: Migration = {
  name: "20261125092100_create_history_functions",
  async up(knex) {
    await knex.raw(`
      create function get_entity_history(p_tenant_id uuid, p_entity_id uuid)
      returns table (
        version integer, previous_version integer, title text, description text, status text,
        visibility text, tags text[], content_hash text, commit_message text, author_id uuid,
        rolled_back_from integer, valid_from timestamptz, valid_to timestamptz, is_current boolean,
        labels text[])
      language sql stable security invoker
      set search_path = pg_catalog, public
      as $fn$
        select v.version, v.previous_version, v.title, v.description, v.status, v.visibility, v.tags,
               v.content_hash, v.commit_message, v.author_id, v.rolled_back_from, v.valid_from, v.valid_to,
               v.valid_to is null,
               coalesce((select array_agg(l.label order by l.label)
                         from public.entity_label l
                         where l.tenant_id = v.tenant_id and l.entity_id = v.entity_id
                           and l.version = v.version and l.valid_to is null), '{}'::text[])
        from public.entity_version v
        where v.tenant_id = p_tenant_id and v.entity_id = p_entity_id
        order by v.version desc
      $fn$;
      comment on function get_entity_history(uuid, uuid) is
        'Every version of an entity, newest first, with the labels currently pointing at each.';
      revoke execute on function get_entity_history(uuid, uuid) from public;
      grant execute on function get_entity_history(uuid, uuid) to promptcraft_content, promptcraft_graph;
    `);
  },
  async down(knex) {
    await knex.raw(`drop function if exists get_entity_history(uuid, uuid);`);
  },
};
