import type { Knex } from "@promptcraft/db";

/**
 * SQL of `session` (one row per issued refresh token; `family_id` is the session) and the login
 * lookups. Everything but the lookups runs inside `withTenant` for the session's tenant.
 */

/** How a session started (`session.auth_method`): Login, CompleteOidcLogin or AcceptInvitation. */
export type SessionAuthMethod = "password" | "oidc" | "invitation";

/** A `session` row. */
export interface SessionRow {
  tenant_id: string;
  id: string;
  family_id: string;
  generation: number;
  user_id: string;
  refresh_token_hash: string;
  auth_method: SessionAuthMethod;
  oidc_provider_id: string | null;
  created_at: Date;
  last_used_at: Date | null;
  expires_at: Date;
  absolute_expires_at: Date;
  rotated_at: Date | null;
  revoked_at: Date | null;
  revoked_reason: string | null;
  user_agent: string | null;
  client_ip: string | null;
}

/** A session (family) as listed: its newest token's row plus when the family started. */
export interface FamilyRow extends Omit<SessionRow, "refresh_token_hash"> {
  started_at: Date;
}

/** `auth_find_tenant(slug)`. */
export interface FoundTenant {
  id: string;
  slug: string;
  name: string;
  status: "active" | "suspended";
}

/** `auth_find_user(tenant, email)`. */
export interface FoundUser {
  tenant_id: string;
  id: string;
  email: string;
  display_name: string;
  role: "owner" | "admin" | "editor" | "viewer";
  status: "invited" | "active" | "deactivated";
  password_hash: string | null;
}

/** `auth_find_refresh_token(hash)`. */
export interface FoundRefreshToken {
  tenant_id: string;
  id: string;
  family_id: string;
  user_id: string;
}

export async function findTenantBySlug(trx: Knex.Transaction, slug: string): Promise<FoundTenant | undefined> {
  const { rows } = await trx.raw<{ rows: FoundTenant[] }>("select id, slug, name, status from auth_find_tenant(?)", [slug]);
  return rows[0];
}

export async function findUserByEmail(trx: Knex.Transaction, tenantId: string, email: string): Promise<FoundUser | undefined> {
  const { rows } = await trx.raw<{ rows: FoundUser[] }>(
    "select tenant_id, id, email, display_name, role, status, password_hash from auth_find_user(?, ?)",
    [tenantId, email],
  );
  return rows[0];
}

export async function findRefreshToken(trx: Knex.Transaction, tokenHash: string): Promise<FoundRefreshToken | undefined> {
  const { rows } = await trx.raw<{ rows: FoundRefreshToken[] }>(
    "select tenant_id, id, family_id, user_id from auth_find_refresh_token(?)",
    [tokenHash],
  );
  return rows[0];
}

export interface NewSessionRow {
  tenantId: string;
  id: string;
  familyId: string;
  generation: number;
  userId: string;
  tokenHash: string;
  authMethod: SessionAuthMethod;
  /** The provider of an OIDC session (kept across refreshes). */
  oidcProviderId: string | null;
  expiresAt: Date;
  absoluteExpiresAt: Date;
  userAgent: string | null;
  clientIp: string | null;
  createdAt: Date;
}

export async function insertSession(trx: Knex.Transaction, s: NewSessionRow): Promise<void> {
  await trx("session").insert({
    tenant_id: s.tenantId,
    id: s.id,
    family_id: s.familyId,
    generation: s.generation,
    user_id: s.userId,
    refresh_token_hash: s.tokenHash,
    auth_method: s.authMethod,
    oidc_provider_id: s.oidcProviderId,
    created_at: s.createdAt,
    expires_at: s.expiresAt,
    absolute_expires_at: s.absoluteExpiresAt,
    user_agent: s.userAgent,
    client_ip: s.clientIp,
  });
}

/** The row of one refresh token, locked for rotation. */
export async function lockSessionRow(trx: Knex.Transaction, id: string): Promise<SessionRow | undefined> {
  return trx<SessionRow>("session").where({ id }).forUpdate().first();
}

/** Marks a row rotated (its token is spent). */
export async function markRotated(trx: Knex.Transaction, id: string, at: Date): Promise<void> {
  await trx("session").where({ id }).update({ rotated_at: at, last_used_at: at });
}

/** Revokes every unrevoked token of a family; the number of rows changed. */
export async function revokeFamily(trx: Knex.Transaction, familyId: string, reason: string): Promise<number> {
  return trx("session").where({ family_id: familyId }).whereNull("revoked_at").update({ revoked_at: trx.fn.now(), revoked_reason: reason });
}

/** Revokes all sessions of a user (but `exceptFamily`); the ids of the sessions revoked. */
export async function revokeUserSessions(trx: Knex.Transaction, userId: string, reason: string, exceptFamily?: string): Promise<string[]> {
  const q = trx("session").where({ user_id: userId }).whereNull("revoked_at");
  if (exceptFamily) void q.whereNot({ family_id: exceptFamily });
  const rows: { family_id: string }[] = await q.update({ revoked_at: trx.fn.now(), revoked_reason: reason }, ["family_id"]);
  return [...new Set(rows.map((r) => r.family_id))];
}

const FAMILY_SELECT = `
  select distinct on (s.family_id) s.tenant_id, s.id, s.family_id, s.generation, s.user_id, s.auth_method, s.oidc_provider_id,
    s.created_at, s.last_used_at, s.expires_at, s.absolute_expires_at, s.rotated_at, s.revoked_at,
    s.revoked_reason, s.user_agent, host(s.client_ip) as client_ip, f.created_at as started_at
  from session s
  join session f on f.tenant_id = s.tenant_id and f.id = s.family_id
`;

/** One session (family) by id, its newest token's row; undefined if none (in this tenant). */
export async function getFamily(trx: Knex.Transaction, familyId: string): Promise<FamilyRow | undefined> {
  const { rows } = await trx.raw<{ rows: FamilyRow[] }>(`${FAMILY_SELECT} where s.family_id = ? order by s.family_id, s.generation desc`, [familyId]);
  return rows[0];
}

/**
 * The sessions of a user, newest first (`started_at, family_id` descending): `limit` of them after
 * the cursor when given (`startedAt` as ISO text to the microsecond). Active only (not revoked, not
 * past either expiry) unless `includeInactive`.
 */
export async function listFamilies(
  trx: Knex.Transaction,
  userId: string,
  options: { includeInactive: boolean; limit: number; after: { startedAt: string; familyId: string } | undefined },
): Promise<FamilyRow[]> {
  const where = ["true"];
  const bindings: Knex.Value[] = [userId];
  if (!options.includeInactive) where.push("revoked_at is null and rotated_at is null and expires_at > now() and absolute_expires_at > now()");
  if (options.after) {
    where.push("(started_at, family_id) < (?::timestamptz, ?::uuid)");
    bindings.push(options.after.startedAt, options.after.familyId);
  }
  const { rows } = await trx.raw<{ rows: FamilyRow[] }>(
    `select * from (${FAMILY_SELECT} where s.user_id = ? order by s.family_id, s.generation desc) latest
     where ${where.join(" and ")}
     order by started_at desc, family_id desc
     limit ?`,
    [...bindings, options.limit],
  );
  return rows;
}

/** What a password change needs of the user: email (policy, throttle key) and current hash. Live users only. */
export async function findPasswordHolder(
  trx: Knex.Transaction,
  tenantId: string,
  userId: string,
): Promise<{ id: string; email: string; password_hash: string | null } | undefined> {
  const { rows } = await trx.raw<{ rows: { id: string; email: string; password_hash: string | null }[] }>(
    "select id, email, password_hash from app_user where tenant_id = ? and id = ? and deleted_at is null",
    [tenantId, userId],
  );
  return rows[0];
}

/** Stores a new password hash; returns the user's new row version. */
export async function setPasswordHash(trx: Knex.Transaction, tenantId: string, userId: string, hash: string): Promise<string> {
  const { rows } = await trx.raw<{ rows: { row_version: string }[] }>(
    `update app_user set password_hash = ?, password_changed_at = now(), updated_at = now(), row_version = row_version + 1
     where tenant_id = ? and id = ? returning row_version::text as row_version`,
    [hash, tenantId, userId],
  );
  return rows[0]!.row_version;
}
