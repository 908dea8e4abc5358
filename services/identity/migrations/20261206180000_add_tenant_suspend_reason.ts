import type { Migration } from "@promptcraft/db";

/**
 * `tenant.suspend_reason` (issue 9): the reason given to SuspendTenant, kept while the tenant is
 * suspended and cleared when it is resumed, so GetTenant and ListTenants show why a tenant is
 * suspended without reading the audit log. Null for active tenants and for tenants suspended before
 * the column existed (shown as empty). `admin_list_tenants` returns it too (its result type changes,
 * so the function is dropped and created again, owner and grants as before); promptcraft_system may
 * read the column (it runs that function). Other services' roles do not get it: their interceptors
 * need the status only.
 */
export const addTenantSuspendReason: Migration = {
  name: "20261206180000_add_tenant_suspend_reason",
  async up(knex) {
    await knex.raw(`
      alter table tenant add column suspend_reason text;
      alter table tenant add constraint tenant_suspend_reason_check
        check (suspend_reason is null or (status = 'suspended' and char_length(suspend_reason) between 1 and 1000));
      comment on column tenant.suspend_reason is 'Reason given to SuspendTenant; null while active (cleared on resume).';
      grant select (suspend_reason) on tenant to promptcraft_system;

      drop function admin_list_tenants(text, timestamptz, uuid, integer);
      create function admin_list_tenants(p_state text, p_after_created_at timestamptz, p_after_id uuid, p_limit integer)
      returns table (id uuid, slug text, name text, plan text, status text, quotas jsonb, settings jsonb,
                     created_at timestamptz, updated_at timestamptz, suspended_at timestamptz, suspend_reason text,
                     row_version bigint)
      language sql stable security definer
      set search_path = pg_catalog, public
      as $fn$
        select t.id, t.slug, t.name, t.plan, t.status, t.quotas, t.settings, t.created_at, t.updated_at,
               t.suspended_at, t.suspend_reason, t.row_version
        from public.tenant t
        where (p_state is null or t.status = p_state)
          and (p_after_created_at is null or (t.created_at, t.id) > (p_after_created_at, p_after_id))
        order by t.created_at, t.id
        limit least(greatest(p_limit, 1), 1001)
      $fn$;
      alter function admin_list_tenants(text, timestamptz, uuid, integer) owner to promptcraft_system;
      revoke execute on function admin_list_tenants(text, timestamptz, uuid, integer) from public;
      grant execute on function admin_list_tenants(text, timestamptz, uuid, integer) to promptcraft_identity;
    `);
  },
  async down(knex) {
    await knex.raw(`
      drop function admin_list_tenants(text, timestamptz, uuid, integer);
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
      revoke select (suspend_reason) on tenant from promptcraft_system;
      alter table tenant drop column suspend_reason;
    `);
  },
};
