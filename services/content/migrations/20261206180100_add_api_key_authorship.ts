import type { Migration } from "@promptcraft/db";

/**
 * API keys write content (issue 9): an entity may be owned, a version written, a label moved and a
 * share granted by an API key acting for no user. Each of those records either a user (the existing
 * column) or a key (a new `…_api_key_id` column, a foreign key to `api_key` like the user's is to
 * `app_user`):
 *
 * - entity: `owner_id` or `owner_api_key_id`, exactly one (a key owns what it creates);
 * - entity_version: `author_id` or `author_api_key_id`, exactly one;
 * - entity_label: `moved_by` or `moved_by_api_key_id`, at most one (rows from before keys could be
 *   recorded have neither);
 * - share: `created_by` or `created_by_api_key_id`, at most one (the same).
 *
 * Who deleted an entity or revoked a share stays in the event log only (`deleted_by`, `revoked_by`
 * are not shown by the API). The partial indexes serve the foreign keys' checks when a tenant's
 * keys are deleted with it, and ListEntities' owner filter. `get_entity_history` returns
 * `author_api_key_id` after `author_id` (its result type changes: dropped and created again, grants
 * as before).
 */
export const addApiKeyAuthorship: Migration = {
  name: "20261206180100_add_api_key_authorship",
  async up(knex) {
    await knex.raw(`
      alter table entity alter column owner_id drop not null;
      alter table entity add column owner_api_key_id uuid;
      alter table entity add constraint entity_owner_api_key_fkey
        foreign key (tenant_id, owner_api_key_id) references api_key (tenant_id, id);
      alter table entity add constraint entity_owner_check check (num_nonnulls(owner_id, owner_api_key_id) = 1);
      create index entity_owner_api_key_idx on entity (tenant_id, owner_api_key_id) where owner_api_key_id is not null;
      comment on column entity.owner_api_key_id is 'The API key that created (and owns) the entity; owner_id is then null.';

      alter table entity_version alter column author_id drop not null;
      alter table entity_version add column author_api_key_id uuid;
      alter table entity_version add constraint entity_version_author_api_key_fkey
        foreign key (tenant_id, author_api_key_id) references api_key (tenant_id, id);
      alter table entity_version add constraint entity_version_author_check
        check (num_nonnulls(author_id, author_api_key_id) = 1);
      create index entity_version_author_api_key_idx on entity_version (tenant_id, author_api_key_id)
        where author_api_key_id is not null;
      comment on column entity_version.author_api_key_id is 'The API key that wrote the version; author_id is then null.';

      alter table entity_label add column moved_by_api_key_id uuid;
      alter table entity_label add constraint entity_label_moved_by_api_key_fkey
        foreign key (tenant_id, moved_by_api_key_id) references api_key (tenant_id, id);
      alter table entity_label add constraint entity_label_moved_by_check check (num_nonnulls(moved_by, moved_by_api_key_id) <= 1);
      create index entity_label_moved_by_api_key_idx on entity_label (tenant_id, moved_by_api_key_id)
        where moved_by_api_key_id is not null;

      alter table share add column created_by_api_key_id uuid;
      alter table share add constraint share_created_by_api_key_fkey
        foreign key (tenant_id, created_by_api_key_id) references api_key (tenant_id, id);
      alter table share add constraint share_created_by_check check (num_nonnulls(created_by, created_by_api_key_id) <= 1);
      create index share_created_by_api_key_idx on share (tenant_id, created_by_api_key_id)
        where created_by_api_key_id is not null;

      drop function get_entity_history(uuid, uuid);
      create function get_entity_history(p_tenant_id uuid, p_entity_id uuid)
      returns table (
        version integer, previous_version integer, title text, description text, status text,
        visibility text, tags text[], content_hash text, commit_message text, author_id uuid,
        author_api_key_id uuid, rolled_back_from integer, valid_from timestamptz, valid_to timestamptz,
        is_current boolean, labels text[])
      language sql stable security invoker
      set search_path = pg_catalog, public
      as $fn$
        select v.version, v.previous_version, v.title, v.description, v.status, v.visibility, v.tags,
               v.content_hash, v.commit_message, v.author_id, v.author_api_key_id, v.rolled_back_from,
               v.valid_from, v.valid_to, v.valid_to is null,
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
    // Rows a key wrote have no user to fall back to: going down fails (NOT NULL) while entities or
    // versions written by keys exist, rather than delete them.
    await knex.raw(`
      drop function get_entity_history(uuid, uuid);
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

      alter table share drop column created_by_api_key_id;
      alter table entity_label drop column moved_by_api_key_id;
      alter table entity_version drop column author_api_key_id;
      alter table entity_version alter column author_id set not null;
      alter table entity drop column owner_api_key_id;
      alter table entity alter column owner_id set not null;
    `);
  },
};
