import type { Migration } from "@promptcraft/db";

/**
 * Narrow lookups for authentication, which happens before the caller's tenant is known.
 *
 * Rather than opening row-level security, each is a SECURITY DEFINER function owned by
 * promptcraft_system (whose only cross-tenant policies are SELECT on these identity tables), with
 * `search_path` pinned, schema-qualified names, EXECUTE revoked from PUBLIC and granted to
 * promptcraft_identity alone. Each answers one question for one key and returns only what the next
 * step needs; the service then continues inside `withTenant` for the tenant found.
 *
 * - auth_find_tenant(slug)                 -> the tenant to log in to
 * - auth_find_user(tenant_id, email)       -> the user (with password hash) for a password login
 * - auth_find_api_key(secret_hash)         -> the key and its tenant (a key is presented without one)
 * - auth_find_refresh_token(token_hash)    -> the session row and its tenant (same)
 *
 * Secrets presented by clients (API keys, refresh tokens) are high-entropy random strings, so they are
 * stored and looked up as a fast hash (e.g. SHA-256 hex): no timing side channel on a hash lookup.
 */
export const createAuthFunctions: Migration = {
  name: "20261125091100_create_auth_functions",
  async up(knex) {
    await knex.raw(`
      create function auth_find_tenant(p_slug text)
      returns table (id uuid, slug text, name text, status text)
      language sql stable security definer
      set search_path = pg_catalog, public
      as $fn$
        select t.id, t.slug, t.name, t.status
        from public.tenant t
        where t.slug = lower(btrim(p_slug))
      $fn$;

      create function auth_find_user(p_tenant_id uuid, p_email text)
      returns table (tenant_id uuid, id uuid, email text, display_name text, role text, status text, password_hash text)
      language sql stable security definer
      set search_path = pg_catalog, public
      as $fn$
        select u.tenant_id, u.id, u.email, u.display_name, u.role, u.status, u.password_hash
        from public.app_user u
        where u.tenant_id = p_tenant_id and lower(u.email) = lower(btrim(p_email)) and u.deleted_at is null
      $fn$;

      create function auth_find_api_key(p_secret_hash text)
      returns table (tenant_id uuid, id uuid, role text, created_by uuid, expires_at timestamptz,
                     revoked_at timestamptz, tenant_status text)
      language sql stable security definer
      set search_path = pg_catalog, public
      as $fn$
        select k.tenant_id, k.id, k.role, k.created_by, k.expires_at, k.revoked_at, t.status
        from public.api_key k
        join public.tenant t on t.id = k.tenant_id
        where k.secret_hash = p_secret_hash
      $fn$;

      create function auth_find_refresh_token(p_token_hash text)
      returns table (tenant_id uuid, id uuid, family_id uuid, user_id uuid)
      language sql stable security definer
      set search_path = pg_catalog, public
      as $fn$
        select s.tenant_id, s.id, s.family_id, s.user_id
        from public.session s
        where s.refresh_token_hash = p_token_hash
      $fn$;

      alter function auth_find_tenant(text) owner to promptcraft_system;
      alter function auth_find_user(uuid, text) owner to promptcraft_system;
      alter function auth_find_api_key(text) owner to promptcraft_system;
      alter function auth_find_refresh_token(text) owner to promptcraft_system;

      revoke execute on function auth_find_tenant(text) from public;
      revoke execute on function auth_find_user(uuid, text) from public;
      revoke execute on function auth_find_api_key(text) from public;
      revoke execute on function auth_find_refresh_token(text) from public;

      grant execute on function auth_find_tenant(text) to promptcraft_identity;
      grant execute on function auth_find_user(uuid, text) to promptcraft_identity;
      grant execute on function auth_find_api_key(text) to promptcraft_identity;
      grant execute on function auth_find_refresh_token(text) to promptcraft_identity;
    `);
  },
  async down(knex) {
    await knex.raw(`
      drop function if exists auth_find_refresh_token(text);
      drop function if exists auth_find_api_key(text);
      drop function if exists auth_find_user(uuid, text);
      drop function if exists auth_find_tenant(text);
    `);
  },
};
