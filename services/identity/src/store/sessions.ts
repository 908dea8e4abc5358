import type { Knex } from "@promptcraft/db";

/**
 * SQL of `session` (one row per issued refresh token; `family_id` is the session) and the login
 * lookups. Everything but the lookups runs inside `withTenant` for the session's tenant and names
 * that tenant in its WHERE too (row-level security is the second wall, not the only one).
 */

/** How a session started (`session.auth_method`): Login, CompleteOidcLogin or AcceptInvitation. */
export type SessionAuthMethod = "password" | "oidc" | "invitation";

/** A `session` row as the service reads it (never the refresh token's hash; `client_ip` as text). */
export interface SessionRow {
  tenant_id: string;
  id: string;
  family_id: string;
  generation: number;
  user_id: string;
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

/** The columns of {@link SessionRow}, of the row aliased `s`. */
const SESSION_COLUMNS = `s.tenant_id, s.id, s.family_id, s.generation, s.user_id, s.auth_method, s.oidc_provider_id, s.created_at,
  s.last_used_at, s.expires_at, s.absolute_expires_at, s.rotated_at, s.revoked_at, s.revoked_reason, s.user_agent,
  host(s.client_ip) as client_ip`;

/** A session (family) as listed: its newest token's row plus when the family started. */
export interface FamilyRow extends SessionRow {
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
export async function lockSessionRow(trx: Knex.Transaction, tenantId: string, id: string): Promise<SessionRow | undefined> {
  const { rows } = await trx.raw<{ rows: SessionRow[] }>(`select ${SESSION_COLUMNS} from session s where s.tenant_id = ? and s.id = ? for update`, [tenantId, id]);
  return rows[0];
}

/** Marks a row rotated (its token is spent). */
export async function markRotated(trx: Knex.Transaction, tenantId: string, id: string, at: Date): Promise<void> {
  await trx.raw("update session set rotated_at = ?, last_used_at = ? where tenant_id = ? and id = ?", [at, at, tenantId, id]);
}

/** Revokes every unrevoked token of a family; the number of rows changed. */
export async function revokeFamily(trx: Knex.Transaction, tenantId: string, familyId: string, reason: string): Promise<number> {
  const { rowCount } = await trx.raw<{ rowCount: number }>(
    "update session set revoked_at = now(), revoked_reason = ? where tenant_id = ? and family_id = ? and revoked_at is null",
    [reason, tenantId, familyId],
  );
  return rowCount;
}

/** Revokes all sessions of a user (but `exceptFamily`); the ids of the sessions revoked. */
export async function revokeUserSessions(trx: Knex.Transaction, tenantId: string, userId: string, reason: string, exceptFamily?: string): Promise<string[]> {
  const { rows } = await trx.raw<{ rows: { family_id: string }[] }>(
    `update session set revoked_at = now(), revoked_reason = ?
     where tenant_id = ? and user_id = ? and revoked_at is null and (?::uuid is null or family_id <> ?::uuid)
     returning family_id`,
    [reason, tenantId, userId, exceptFamily ?? null, exceptFamily ?? null],
  );
  return [...new Set(rows.map((r) => r.family_id))];
}

/** The newest token row of each family, with when the family started (its generation 0); callers add the WHERE on `s`. */
const FAMILY_SELECT = `
  select distinct on (s.family_id) ${SESSION_COLUMNS}, f.created_at as started_at
  from session s
  join session f on f.tenant_id = s.tenant_id and f.id = s.family_id
`;

/** The columns of {@link FamilyRow}, of the family aliased `latest`. */
const FAMILY_COLUMNS = `latest.tenant_id, latest.id, latest.family_id, latest.generation, latest.user_id, latest.auth_method,
  latest.oidc_provider_id, latest.created_at, latest.last_used_at, latest.expires_at, latest.absolute_expires_at, latest.rotated_at,
  latest.revoked_at, latest.revoked_reason, latest.user_agent, latest.client_ip, latest.started_at`;

/** One session (family) of the tenant by id, its newest token's row; undefined if none. */
export async function getFamily(trx: Knex.Transaction, tenantId: string, familyId: string): Promise<FamilyRow | undefined> {
  const { rows } = await trx.raw<{ rows: FamilyRow[] }>(
    `${FAMILY_SELECT} where s.tenant_id = ? and s.family_id = ? order by s.family_id, s.generation desc`,
    [tenantId, familyId],
  );
  return rows[0];
}

/**
 * The sessions of a user, newest first (`started_at, family_id` descending): `limit` of them after
 * the cursor when given (`startedAt` as ISO text to the microsecond). Active only (not revoked, not
 * past either expiry) unless `includeInactive`.
 */
export async function listFamilies(
  trx: Knex.Transaction,
  tenantId: string,
  userId: string,
  options: { includeInactive: boolean; limit: number; after: { startedAt: string; familyId: string } | undefined },
): Promise<FamilyRow[]> {
  const where = ["true"];
  const bindings: Knex.Value[] = [tenantId, userId];
  if (!options.includeInactive) {
    where.push("latest.revoked_at is null and latest.rotated_at is null and latest.expires_at > now() and latest.absolute_expires_at > now()");
  }
  if (options.after) {
    where.push("(latest.started_at, latest.family_id) < (?::timestamptz, ?::uuid)");
    bindings.push(options.after.startedAt, options.after.familyId);
  }
  const { rows } = await trx.raw<{ rows: FamilyRow[] }>(
    `select ${FAMILY_COLUMNS}
     from (${FAMILY_SELECT} where s.tenant_id = ? and s.user_id = ? order by s.family_id, s.generation desc) latest
     where ${where.join(" and ")}
     order by latest.started_at desc, latest.family_id desc
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
