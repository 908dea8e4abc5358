import type { Migration } from "@promptcraft/db";

/**
 * An API key acts with at most its creator's authority now, not only at creation (docs/decisions.md,
 * "API keys follow their creator"). Before, a key kept the role it was given when its creator was
 * later demoted or deactivated, and a key made by a key recorded no creator at all.
 *
 * - `created_by_api_key_id`: the key that made this one (CreateApiKey called with a key), beside
 *   `created_by` (a user); at most one of them is set.
 * - `auth_find_api_key` (replaced; same definer, owner and grants) follows the chain of creators —
 *   key, the key that made it, … — and returns beside the key's own row `effective_role`, the lowest
 *   of every key's role and every creating user's current role on the chain, and `creators_active`:
 *   false when a creating key on the chain is revoked or expired, or a creating user is deactivated,
 *   invited again or deleted. A key with no creator left (the user removed) is judged by itself.
 */
/** A role's rank; null for no role (no creating user at that step), which least() and min() skip. */
const ROLE_RANK = `case %s when 'owner' then 4 when 'admin' then 3 when 'editor' then 2 when 'viewer' then 1 end`;
const rank = (expr: string) => ROLE_RANK.replace("%s", expr);

export const capApiKeysByCreator: Migration = {
  name: "20261207180000_api_key_creator_cap",
  async up(knex) {
    await knex.raw(`
      alter table api_key add column created_by_api_key_id uuid;
      alter table api_key add constraint api_key_created_by_api_key_fkey foreign key (tenant_id, created_by_api_key_id)
        references api_key (tenant_id, id) on delete set null (created_by_api_key_id);
      alter table api_key add constraint api_key_one_creator_check check (created_by is null or created_by_api_key_id is null);
      create index api_key_created_by_api_key_idx on api_key (tenant_id, created_by_api_key_id) where created_by_api_key_id is not null;
      grant select (created_by_api_key_id) on api_key to promptcraft_system;

      drop function auth_find_api_key(text);
      create function auth_find_api_key(p_secret_hash text)
      returns table (tenant_id uuid, id uuid, role text, created_by uuid, expires_at timestamptz,
                     revoked_at timestamptz, tenant_status text, effective_role text, creators_active boolean)
      language sql stable security definer
      set search_path = pg_catalog, public
      as $fn$
        with recursive chain (tenant_id, id, role, created_by, created_by_api_key_id, expires_at, revoked_at, depth) as (
          select k.tenant_id, k.id, k.role, k.created_by, k.created_by_api_key_id, k.expires_at, k.revoked_at, 0
          from public.api_key k
          where k.secret_hash = p_secret_hash
          union all
          -- A key is made after the key that makes it, so the chain has no cycle; the depth bound is a guard.
          select p.tenant_id, p.id, p.role, p.created_by, p.created_by_api_key_id, p.expires_at, p.revoked_at, c.depth + 1
          from chain c
          join public.api_key p on p.tenant_id = c.tenant_id and p.id = c.created_by_api_key_id
          where c.depth < 32
        ), judged as (
          select
            min(least(${rank("c.role")}, ${rank("u.role")})) as rank,
            bool_and(
              (c.depth = 0 or (c.revoked_at is null and (c.expires_at is null or c.expires_at > now())))
              and (c.created_by is null or (u.status = 'active' and u.deleted_at is null))
            ) as creators_active
          from chain c
          left join public.app_user u on u.tenant_id = c.tenant_id and u.id = c.created_by
        )
        select k.tenant_id, k.id, k.role, k.created_by, k.expires_at, k.revoked_at, t.status,
               case j.rank when 3 then 'admin' when 2 then 'editor' when 1 then 'viewer' end,
               coalesce(j.creators_active, false)
        from chain k
        cross join judged j
        join public.tenant t on t.id = k.tenant_id
        where k.depth = 0
      $fn$;
      alter function auth_find_api_key(text) owner to promptcraft_system;
      revoke execute on function auth_find_api_key(text) from public;
      grant execute on function auth_find_api_key(text) to promptcraft_identity;
    `);
  },
  async down(knex) {
    await knex.raw(`
      drop function if exists auth_find_api_key(text);
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
      alter function auth_find_api_key(text) owner to promptcraft_system;
      revoke execute on function auth_find_api_key(text) from public;
      grant execute on function auth_find_api_key(text) to promptcraft_identity;
      alter table api_key drop column if exists created_by_api_key_id;
    `);
  },
};
