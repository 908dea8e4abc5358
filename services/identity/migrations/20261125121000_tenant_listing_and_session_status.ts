import type { Migration } from "@promptcraft/db";

/**
 * Two narrow read paths (issue 3):
 *
 * - `admin_list_tenants(state, after_created_at, after_id, limit)`: ListTenants for the platform
 *   administrator, the one read across tenants that is not a login lookup. Like the auth_find_*
 *   functions it is SECURITY DEFINER, owned by promptcraft_system (whose `tenant_system_read`
 *   policy admits every tenant row), pinned `search_path`, EXECUTE for promptcraft_identity alone;
 *   it returns one keyset page of tenants ordered by (created_at, id) and nothing of any other table.
 *   promptcraft_system gets SELECT on the tenant columns it returns (none is a secret).
 * - Session status for every service: the auth interceptor refuses an access token whose session
 *   (`sid` = the family's root row) was revoked or ended. Every service role may read
 *   `session (tenant_id, id, revoked_at, absolute_expires_at)` — no token hash, no user agent or
 *   address — and row-level security keeps that to the token's own tenant, as for `tenant` and
 *   `app_user`.
 */
export const createTenantListingAndSessionStatus: Migration = {
  name: "20261125121000_tenant_listing_and_session_status",
  async up(knex) {
    await knex.raw(`
      create index tenant_created_at_idx on tenant (created_at, id);

      grant select (plan, quotas, settings, created_at, updated_at, suspended_at, row_version) on tenant to promptcraft_system;

      create function admin_list_tenants(p_state text, p_after_created_at timestamptz, p_after_id uuid, p_limit integer)
      returns table (id uuid, slug text, name text, plan text, status text, quotas jsonb, settings jsonb,
                     created_at timestamptz, updated_at timestamptz, suspended_at timestamptz, row_version bigint)
      language sql stable security definer
      set search_path = pg_catalog, public
      as $fn$
        select t.id, t.slug, t.name, t.plan, t.status, t.quotas, t.settings, t.created_at, t.updated_at,
               t.suspended_at, t.row_version
        from public.tenant t
        where (p_state is null or t.status = p_state)
          and (p_after_created_at is null or (t.created_at, t.id) > (p_after_created_at, p_after_id))
        order by t.created_at, t.id
        limit least(greatest(p_limit, 1), 1001)
      $fn$;
      alter function admin_list_tenants(text, timestamptz, uuid, integer) owner to promptcraft_system;
      revoke execute on function admin_list_tenants(text, timestamptz, uuid, integer) from public;
      grant execute on function admin_list_tenants(text, timestamptz, uuid, integer) to promptcraft_identity;

      grant select (tenant_id, id, revoked_at, absolute_expires_at) on session
        to promptcraft_content, promptcraft_graph, promptcraft_search, promptcraft_analytics;
    `);
  },
  async down(knex) {
    await knex.raw(`
      revoke select (tenant_id, id, revoked_at, absolute_expires_at) on session
        from promptcraft_content, promptcraft_graph, promptcraft_search, promptcraft_analytics;
      drop function if exists admin_list_tenants(text, timestamptz, uuid, integer);
      revoke select (plan, quotas, settings, created_at, updated_at, suspended_at, row_version) on tenant from promptcraft_system;
      drop index if exists tenant_created_at_idx;
    `);
  },
};
