import type { Knex, SqlBuilder } from "@promptcraft/db";
import { roleAtLeast, type Role } from "./authz.js";
import type { AuthContext } from "./context.js";
import { apiKeyIdOf } from "./principal-name.js";

/**
 * Content's access rule for one entity, as ONE SQL expression that every service reading entities
 * uses (content for its gets and lists, search inside its ranked queries): the caller's
 * permission rank (0 none, 1 view, 2 edit, 3 admin) is the highest of
 * - tenant role owner or admin → admin on every entity of the tenant;
 * - owning the entity (the user or the API key that created it) → admin;
 * - the current version's visibility `tenant` → view for every member, edit for editors and up;
 * - a live share to the caller or to the whole tenant → its permission (an API key gets only the
 *   tenant-wide shares: shares name users);
 * capped at view for the viewer role (viewers never write). Shares are live while
 * `revoked_at is null and (expires_at is null or expires_at > now())`.
 *
 * Why a shared SQL builder rather than a SQL function: the expression is inlined into each query,
 * so the planner sees the owner and visibility columns and the share subquery directly (a SQL
 * function with a subquery is never inlined and would run once per row); and a copy in search
 * could drift from content's rule (docs/decisions.md).
 */

/** Who the rule is evaluated for. */
export interface AccessPrincipal {
  role: Role;
  /** The user, if the caller is one. */
  userId: string | null;
  /** The API key, if the caller is a key acting for no user. */
  apiKeyId: string | null;
}

/** The caller as the rule sees it: its role, and the user or the API key it is. */
export function accessPrincipalOf(caller: Pick<AuthContext, "role" | "userId"> & Partial<Pick<AuthContext, "kind" | "credentialId">>): AccessPrincipal {
  return { role: caller.role, userId: caller.userId ?? null, apiKeyId: apiKeyIdOf(caller) };
}

/** What a caller gets from their role alone, whatever the entity (ranks). */
export interface RoleGrants {
  /** Rank granted on every entity of the tenant (admin for owners and admins). */
  everyEntity: number;
  /** Rank granted on entities whose current version has visibility `tenant`. */
  tenantVisible: number;
  /** Highest rank the role allows at all (viewers: view). */
  cap: number;
}

/** The role-dependent parts of the rule, as ranks (none 0, view 1, edit 2, admin 3). */
export function roleGrants(role: Role): RoleGrants {
  return {
    everyEntity: roleAtLeast(role, "admin") ? 3 : 0,
    tenantVisible: roleAtLeast(role, "editor") ? 2 : 1,
    cap: roleAtLeast(role, "editor") ? 3 : 1,
  };
}

/**
 * The rule as a SQL expression over the entity row `entity` and its current version row `current`
 * (aliases of the query it goes into). Filter on `… >= 1` before ranking or paging, so that a page
 * never holds what the caller may not see and never comes back short because of it.
 */
export function entityPermissionRankSql(
  knex: SqlBuilder,
  principal: AccessPrincipal,
  aliases: { entity: string; current: string } = { entity: "e", current: "cv" },
): Knex.Raw {
  const { entity: e, current: cv } = aliases;
  const grants = roleGrants(principal.role);
  return knex.raw(
    `least(?::int, greatest(
       ?::int,
       case when ${e}.owner_id = ?::uuid or ${e}.owner_api_key_id = ?::uuid then 3 else 0 end,
       case when ${cv}.visibility = 'tenant' then ?::int else 0 end,
       coalesce((select max(case s.permission when 'admin' then 3 when 'edit' then 2 else 1 end)
                 from share s
                 where s.tenant_id = ${e}.tenant_id and s.entity_id = ${e}.id and s.revoked_at is null
                   and (s.expires_at is null or s.expires_at > now())
                   and (s.grantee_type = 'tenant' or s.grantee_user_id = ?::uuid)), 0)))`,
    [grants.cap, grants.everyEntity, principal.userId, principal.apiKeyId, grants.tenantVisible, principal.userId],
  );
}
