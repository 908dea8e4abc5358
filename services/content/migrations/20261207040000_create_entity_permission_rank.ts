import type { Migration } from "@promptcraft/db";

/**
 * Content's access rule (services/content/src/domain/access.ts) as SQL functions, so that graph
 * decides who may see and edit an entity by the same rule rather than a copy (issue 12; why in
 * docs/decisions.md). Content's own reads call them too (store/access.ts `permissionRankSql`).
 *
 * - `entity_permission_rank(...)`: the caller's rank on one entity, 0 none, 1 view, 2 edit, 3 admin:
 *   the highest of owner/admin role (admin everywhere), owning it (user or API key), the current
 *   version's visibility `tenant` (edit for editors and up, view for viewers) and a live share,
 *   capped at view for viewers. A plain `language sql` expression over its arguments (no SET, no
 *   sublink) so that PostgreSQL inlines it into the calling query.
 * - `entity_share_rank(...)`: the best live share of the entity to the user or to the whole tenant
 *   (an API key, acting for no user, gets only the tenant-wide ones). Shares are live while
 *   `revoked_at is null and (expires_at is null or expires_at > now())`: expiry is read-time.
 *
 * Both are SECURITY INVOKER: row-level security on `share` still holds, so graph gets SELECT on
 * `share` (it reads only the rank through these functions).
 */
export const createEntityPermissionRank: Migration = {
  name: "20261207040000_create_entity_permission_rank",
  async up(knex) {
    await knex.raw(`
      create function entity_share_rank(p_tenant_id uuid, p_entity_id uuid, p_user_id uuid)
      returns integer
      language sql stable parallel safe
      as $fn$
        select coalesce(max(case s.permission when 'admin' then 3 when 'edit' then 2 else 1 end), 0)
        from public.share s
        where s.tenant_id = p_tenant_id and s.entity_id = p_entity_id and s.revoked_at is null
          and (s.expires_at is null or s.expires_at > now())
          and (s.grantee_type = 'tenant' or s.grantee_user_id = p_user_id)
      $fn$;
      comment on function entity_share_rank(uuid, uuid, uuid) is
        'Best live share rank (0 none, 1 view, 2 edit, 3 admin) of an entity to a user or the whole tenant.';

      create function entity_permission_rank(
        p_tenant_id uuid, p_entity_id uuid, p_owner_id uuid, p_owner_api_key_id uuid, p_visibility text,
        p_user_id uuid, p_api_key_id uuid, p_role text)
      returns integer
      language sql stable parallel safe
      as $fn$
        select least(
          case when p_role in ('owner', 'admin', 'editor') then 3 else 1 end,
          greatest(
            case when p_role in ('owner', 'admin') then 3 else 0 end,
            case when p_owner_id = p_user_id or p_owner_api_key_id = p_api_key_id then 3 else 0 end,
            case when p_visibility = 'tenant' then case when p_role in ('owner', 'admin', 'editor') then 2 else 1 end else 0 end,
            public.entity_share_rank(p_tenant_id, p_entity_id, p_user_id)))
      $fn$;
      comment on function entity_permission_rank(uuid, uuid, uuid, uuid, text, uuid, uuid, text) is
        'Content''s access rule: the caller''s rank on an entity (0 none, 1 view, 2 edit, 3 admin) from the entity''s owner, its current visibility, shares, and the caller''s user, API key and tenant role.';

      revoke execute on function entity_share_rank(uuid, uuid, uuid) from public;
      revoke execute on function entity_permission_rank(uuid, uuid, uuid, uuid, text, uuid, uuid, text) from public;
      grant execute on function entity_share_rank(uuid, uuid, uuid) to promptcraft_content, promptcraft_graph;
      grant execute on function entity_permission_rank(uuid, uuid, uuid, uuid, text, uuid, uuid, text) to promptcraft_content, promptcraft_graph;
      grant select on share to promptcraft_graph;
    `);
  },
  async down(knex) {
    await knex.raw(`
      revoke select on share from promptcraft_graph;
      drop function if exists entity_permission_rank(uuid, uuid, uuid, uuid, text, uuid, uuid, text);
      drop function if exists entity_share_rank(uuid, uuid, uuid);
    `);
  },
};
