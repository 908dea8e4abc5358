import { sqlTime, type Knex } from "@promptcraft/db";

/**
 * SQL of identity's housekeeping, inside one `withServiceRole` transaction. Tenant tables are
 * cleaned one tenant at a time (`enterTenant` sets `app.tenant_id` for each, row-level security as
 * everywhere, and each statement names the tenant too); `login_throttle` and `signing_key` are
 * platform tables.
 */

/** Only one replica sweeps at a time: a transaction-scoped advisory lock; false if another holds it. */
export async function tryHousekeepingLock(trx: Knex.Transaction, key: number): Promise<boolean> {
  const { rows } = await trx.raw<{ rows: { locked: boolean }[] }>("select pg_try_advisory_xact_lock(?) as locked", [key]);
  return rows[0]!.locked;
}

/** Throttle counters whose window is over and that block nothing. */
export async function pruneThrottles(trx: Knex.Transaction, now: Date, windowS: number): Promise<number> {
  const { rowCount } = await trx.raw<{ rowCount: number }>(
    `delete from login_throttle
     where last_failure_at < ?::timestamptz - make_interval(secs => ?) and (blocked_until is null or blocked_until < ?)`,
    [now, windowS, now],
  );
  return rowCount;
}

/** Retired keys out of the JWK Set: every token they signed has expired. */
export async function pruneSigningKeys(trx: Knex.Transaction, now: Date): Promise<number> {
  const { rowCount } = await trx.raw<{ rowCount: number }>("delete from signing_key where expires_at is not null and expires_at < ?", [now]);
  return rowCount;
}

/** When the signing key was activated, if one signs. */
export async function activeKeySince(trx: Knex.Transaction): Promise<Date | undefined> {
  const { rows } = await trx.raw<{ rows: { activated_at: Date }[] }>(
    "select activated_at from signing_key where activated_at is not null and retired_at is null",
  );
  return rows[0]?.activated_at;
}

/** One page of tenant ids, by (created_at, id), through `admin_list_tenants`. */
export async function tenantIdsAfter(
  trx: Knex.Transaction,
  after: { createdAt: Date; id: string } | undefined,
  limit: number,
): Promise<{ id: string; created_at: Date }[]> {
  const { rows } = await trx.raw<{ rows: { id: string; created_at: Date }[] }>(
    "select id, created_at from admin_list_tenants(null, ?::timestamptz, ?::uuid, ?)",
    [after ? sqlTime(after.createdAt) : null, after?.id ?? null, limit],
  );
  return rows;
}

/** Scopes the rest of the transaction's statements to one tenant. */
export async function enterTenant(trx: Knex.Transaction, tenantId: string): Promise<void> {
  await trx.raw("select set_config('app.tenant_id', ?, true)", [tenantId]);
}

/** The tenant's invitations that expired before `cutoff` (used, replaced or not). */
export async function pruneInvitations(trx: Knex.Transaction, tenantId: string, cutoff: Date): Promise<number> {
  const { rowCount } = await trx.raw<{ rowCount: number }>("delete from invitation where tenant_id = ? and expires_at < ?", [tenantId, cutoff]);
  return rowCount;
}

/**
 * Whole sessions (every row of a family) that ended before `cutoff`: past their absolute expiry,
 * revoked, or with no refresh token valid since. Rows of a live family are kept: a rotated-out
 * token must still be recognised as reuse.
 */
export async function pruneSessions(trx: Knex.Transaction, tenantId: string, cutoff: Date): Promise<number> {
  const { rowCount } = await trx.raw<{ rowCount: number }>(
    `delete from session s using session root
     where s.tenant_id = ? and root.tenant_id = s.tenant_id and root.id = s.family_id
       and (root.absolute_expires_at < ? or root.revoked_at < ?
            or not exists (select 1 from session l where l.tenant_id = root.tenant_id and l.family_id = root.family_id and l.expires_at >= ?))`,
    [tenantId, cutoff, cutoff, cutoff],
  );
  return rowCount;
}

/** The tenant's encrypted API-key secrets kept for request_id retries, once their window (keys created before `cutoff`) is over. */
export async function clearRetrySecrets(trx: Knex.Transaction, tenantId: string, cutoff: Date): Promise<number> {
  const { rowCount } = await trx.raw<{ rowCount: number }>(
    "update api_key set retry_secret = null where tenant_id = ? and retry_secret is not null and created_at < ?",
    [tenantId, cutoff],
  );
  return rowCount;
}
