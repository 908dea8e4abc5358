import { readAsService, sqlTime, withTenant, type Knex } from "@promptcraft/db";
import type { Role } from "@promptcraft/platform";

/** All SQL of the `api_key` aggregate. Tenant-scoped calls take a `withTenant` transaction. */

/** Roles a key may have (`api_key.role`: never owner). */
export type ApiKeyRole = Exclude<Role, "owner">;

/** An API key row (never its hash). */
export interface ApiKeyRow {
  tenantId: string;
  id: string;
  name: string;
  prefix: string;
  role: ApiKeyRole;
  /** The user who created it, or (`createdByApiKeyId`) the key that did. */
  createdBy: string | null;
  createdByApiKeyId: string | null;
  createdAt: Date;
  expiresAt: Date | null;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

const COLUMNS = "tenant_id, id, name, prefix, role, created_by, created_by_api_key_id, created_at, expires_at, last_used_at, revoked_at";

interface RawRow {
  tenant_id: string;
  id: string;
  name: string;
  prefix: string;
  role: ApiKeyRole;
  created_by: string | null;
  created_by_api_key_id: string | null;
  created_at: Date;
  expires_at: Date | null;
  last_used_at: Date | null;
  revoked_at: Date | null;
}

function fromRow(r: RawRow): ApiKeyRow {
  return {
    tenantId: r.tenant_id,
    id: r.id,
    name: r.name,
    prefix: r.prefix,
    role: r.role,
    createdBy: r.created_by,
    createdByApiKeyId: r.created_by_api_key_id,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    lastUsedAt: r.last_used_at,
    revokedAt: r.revoked_at,
  };
}

/**
 * Inserts a key (with a given id and an encrypted `retrySecret` when created with a request id);
 * `undefined` when a key with this id exists already (a retry).
 */
export async function insertApiKey(
  trx: Knex.Transaction,
  key: {
    tenantId: string;
    id: string;
    name: string;
    prefix: string;
    secretHash: string;
    role: ApiKeyRole;
    createdBy: string | null;
    createdByApiKeyId: string | null;
    expiresAt: Date | null;
    retrySecret: string | null;
  },
): Promise<ApiKeyRow | undefined> {
  const result = await trx.raw<{ rows: RawRow[] }>(
    `insert into api_key (tenant_id, id, name, prefix, secret_hash, role, created_by, created_by_api_key_id, expires_at, retry_secret)
     values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) on conflict (tenant_id, id) do nothing returning ${COLUMNS}`,
    [
      key.tenantId,
      key.id,
      key.name,
      key.prefix,
      key.secretHash,
      key.role,
      key.createdBy,
      key.createdByApiKeyId,
      key.expiresAt ? sqlTime(key.expiresAt) : null,
      key.retrySecret,
    ],
  );
  return result.rows[0] && fromRow(result.rows[0]);
}

/** The encrypted secret of a key created with a request id less than `withinS` seconds ago, if still kept. */
export async function findRetrySecret(trx: Knex.Transaction, tenantId: string, id: string, withinS: number): Promise<string | undefined> {
  const result = await trx.raw<{ rows: { retry_secret: string }[] }>(
    `select retry_secret from api_key
     where tenant_id = ? and id = ? and retry_secret is not null and created_at > now() - make_interval(secs => ?)`,
    [tenantId, id, withinS],
  );
  return result.rows[0]?.retry_secret;
}

export async function getApiKey(trx: Knex.Transaction, tenantId: string, id: string): Promise<ApiKeyRow | undefined> {
  const result = await trx.raw<{ rows: RawRow[] }>(`select ${COLUMNS} from api_key where tenant_id = ? and id = ?`, [tenantId, id]);
  return result.rows[0] && fromRow(result.rows[0]);
}

/** Newest first, keyset-paginated after `(createdAt, id)` (`createdAt` as ISO text to the microsecond). */
export async function listApiKeys(
  trx: Knex.Transaction,
  tenantId: string,
  options: { limit: number; showInactive: boolean; after: { createdAt: string; id: string } | undefined },
): Promise<ApiKeyRow[]> {
  const where = ["tenant_id = ?"];
  const bindings: unknown[] = [tenantId];
  if (!options.showInactive) where.push("revoked_at is null and (expires_at is null or expires_at > now())");
  if (options.after) {
    where.push("(created_at, id) < (?::timestamptz, ?::uuid)");
    bindings.push(options.after.createdAt, options.after.id);
  }
  bindings.push(options.limit);
  const result = await trx.raw<{ rows: RawRow[] }>(
    `select ${COLUMNS} from api_key where ${where.join(" and ")} order by created_at desc, id desc limit ?`,
    bindings as Knex.RawBinding[],
  );
  return result.rows.map(fromRow);
}

/** Sets `revoked_at` if unset; returns the row when it changed, undefined otherwise. */
export async function revokeApiKey(trx: Knex.Transaction, tenantId: string, id: string): Promise<ApiKeyRow | undefined> {
  const result = await trx.raw<{ rows: RawRow[] }>(
    `update api_key set revoked_at = now() where tenant_id = ? and id = ? and revoked_at is null returning ${COLUMNS}`,
    [tenantId, id],
  );
  return result.rows[0] && fromRow(result.rows[0]);
}

/** Records a use of the key, at most once a minute (`last_used_at`). */
export async function touchApiKey(db: Knex, tenantId: string, id: string): Promise<void> {
  await withTenant(db, { service: "identity", tenantId }, (trx) =>
    trx.raw(
      `update api_key set last_used_at = now()
       where tenant_id = ? and id = ? and (last_used_at is null or last_used_at < now() - interval '1 minute')`,
      [tenantId, id],
    ),
  );
}

/** Locks the tenant row (serialising key creation per tenant) and returns its `max_api_keys` quota and the unrevoked keys. */
export async function apiKeyQuota(trx: Knex.Transaction, tenantId: string): Promise<{ max: number | null; used: number }> {
  const tenant = await trx.raw<{ rows: { max: string | null }[] }>("select quotas->>'max_api_keys' as max from tenant where id = ? for update", [tenantId]);
  const raw = tenant.rows[0]?.max ?? null;
  const max = raw === null || !/^\d+$/.test(raw) ? null : Number(raw);
  if (max === null) return { max, used: 0 };
  const count = await trx.raw<{ rows: { n: number }[] }>("select count(*)::int as n from api_key where tenant_id = ? and revoked_at is null", [tenantId]);
  return { max, used: count.rows[0]!.n };
}

/** A key found by its secret, with what its chain of creators allows now. */
export interface ApiKeyByHash {
  tenantId: string;
  id: string;
  expiresAt: Date | null;
  revokedAt: Date | null;
  tenantStatus: string;
  /** The lowest of its role and every creator's current role up the chain (a user's, or a creating key's); null when none. */
  effectiveRole: ApiKeyRole | null;
  /** False when a creating key up the chain is revoked or expired, or a creating user is not active. */
  creatorsActive: boolean;
}

/** The key with this secret hash, across tenants (`auth_find_api_key`, identity's definer function). */
export async function findApiKeyBySecretHash(db: Knex, secretHash: string): Promise<ApiKeyByHash | undefined> {
  // One read-only round trip: every call authenticated by an API key that is not cached asks this.
  const [r] = await readAsService<{
    tenant_id: string;
    id: string;
    expires_at: Date | null;
    revoked_at: Date | null;
    tenant_status: string;
    effective_role: ApiKeyRole | null;
    creators_active: boolean;
  }>(db, "identity", "select tenant_id, id, expires_at, revoked_at, tenant_status, effective_role, creators_active from auth_find_api_key(?)", [secretHash]);
  return (
    r && {
      tenantId: r.tenant_id,
      id: r.id,
      expiresAt: r.expires_at,
      revokedAt: r.revoked_at,
      tenantStatus: r.tenant_status,
      effectiveRole: r.effective_role,
      creatorsActive: r.creators_active,
    }
  );
}
