import type { Knex } from "@promptcraft/db";

/**
 * SQL of OpenID Connect login: `oidc_provider`, `oidc_login_attempt` and `oauth_identity` (linked
 * identities). Everything runs inside `withTenant` for the tenant concerned, except
 * {@link findLoginAttemptTenant} (the callback names no tenant).
 */

export type JitRole = "admin" | "editor" | "viewer";

/** A row of `oidc_provider`; `client_secret` is the stored ciphertext. */
export interface OidcProviderRow {
  tenant_id: string;
  id: string;
  display_name: string;
  issuer: string;
  client_id: string;
  client_secret: string | null;
  scopes: string[];
  allowed_email_domains: string[];
  jit_enabled: boolean;
  jit_role: JitRole;
  enabled: boolean;
  created_at: Date;
  updated_at: Date;
  row_version: string;
}

const PROVIDER_COLUMNS =
  "tenant_id, id, display_name, issuer, client_id, client_secret, scopes, allowed_email_domains, jit_enabled, jit_role, enabled, created_at, updated_at, row_version::text as row_version";

/** The configurable fields of a provider, as stored. */
export interface OidcProviderFields {
  displayName: string;
  issuer: string;
  clientId: string;
  clientSecret: string | null;
  scopes: string[];
  allowedEmailDomains: string[];
  jitEnabled: boolean;
  jitRole: JitRole;
  enabled: boolean;
}

const FIELD_COLUMNS: Record<keyof OidcProviderFields, string> = {
  displayName: "display_name",
  issuer: "issuer",
  clientId: "client_id",
  clientSecret: "client_secret",
  scopes: "scopes",
  allowedEmailDomains: "allowed_email_domains",
  jitEnabled: "jit_enabled",
  jitRole: "jit_role",
  enabled: "enabled",
};

/** Inserts a provider; `undefined` when one with this id exists already (an idempotent retry). */
export async function insertProvider(trx: Knex.Transaction, tenantId: string, id: string, f: OidcProviderFields): Promise<OidcProviderRow | undefined> {
  const { rows } = await trx.raw<{ rows: OidcProviderRow[] }>(
    `insert into oidc_provider (tenant_id, id, display_name, issuer, client_id, client_secret, scopes, allowed_email_domains, jit_enabled, jit_role, enabled)
     values (?, ?, ?, ?, ?, ?, ?::text[], ?::text[], ?, ?, ?)
     on conflict (tenant_id, id) do nothing returning ${PROVIDER_COLUMNS}`,
    [tenantId, id, f.displayName, f.issuer, f.clientId, f.clientSecret, f.scopes, f.allowedEmailDomains, f.jitEnabled, f.jitRole, f.enabled],
  );
  return rows[0];
}

/** The provider, locked for update when `lock` is set. */
export async function findProvider(trx: Knex.Transaction, tenantId: string, id: string, lock = false): Promise<OidcProviderRow | undefined> {
  const { rows } = await trx.raw<{ rows: OidcProviderRow[] }>(
    `select ${PROVIDER_COLUMNS} from oidc_provider where tenant_id = ? and id = ?${lock ? " for update" : ""}`,
    [tenantId, id],
  );
  return rows[0];
}

/** Applies the given fields, bumps `row_version`; returns the new row. */
export async function updateProvider(trx: Knex.Transaction, tenantId: string, id: string, fields: Partial<OidcProviderFields>): Promise<OidcProviderRow> {
  const sets: string[] = [];
  const bindings: Knex.Value[] = [];
  for (const [key, value] of Object.entries(fields) as [keyof OidcProviderFields, OidcProviderFields[keyof OidcProviderFields]][]) {
    const column = FIELD_COLUMNS[key];
    sets.push(Array.isArray(value) ? `${column} = ?::text[]` : `${column} = ?`);
    bindings.push(value);
  }
  const { rows } = await trx.raw<{ rows: OidcProviderRow[] }>(
    `update oidc_provider set ${[...sets, "updated_at = now()", "row_version = row_version + 1"].join(", ")}
     where tenant_id = ? and id = ? returning ${PROVIDER_COLUMNS}`,
    [...bindings, tenantId, id],
  );
  return rows[0]!;
}

/** Deletes a provider (its linked identities and pending attempts go with it); the number of identities removed. */
export async function deleteProvider(trx: Knex.Transaction, tenantId: string, id: string): Promise<number> {
  const { rows } = await trx.raw<{ rows: { n: number }[] }>(
    `with gone as (delete from oidc_provider where tenant_id = ? and id = ? returning id)
     select count(*)::int as n from oauth_identity where tenant_id = ? and provider_id in (select id from gone)`,
    [tenantId, id, tenantId],
  );
  return rows[0]!.n;
}

/** A page of providers ordered by `lower(display_name), id`, after the cursor when given; `sort_key` is that key as PostgreSQL lowers it (as for users). */
export async function listProviders(
  trx: Knex.Transaction,
  tenantId: string,
  q: { enabledOnly: boolean; after?: { name: string; id: string }; limit: number },
): Promise<(OidcProviderRow & { sort_key: string })[]> {
  const where = ["tenant_id = ?"];
  const bindings: Knex.Value[] = [tenantId];
  if (q.enabledOnly) where.push("enabled");
  if (q.after) {
    where.push("(lower(display_name), id) > (?, ?::uuid)");
    bindings.push(q.after.name, q.after.id);
  }
  const { rows } = await trx.raw<{ rows: (OidcProviderRow & { sort_key: string })[] }>(
    `select ${PROVIDER_COLUMNS}, lower(display_name) as sort_key from oidc_provider where ${where.join(" and ")} order by lower(display_name), id limit ?`,
    [...bindings, q.limit],
  );
  return rows;
}

/** A pending login attempt (`oidc_login_attempt`). */
export interface LoginAttemptRow {
  tenant_id: string;
  id: string;
  provider_id: string;
  nonce: string;
  code_verifier: string;
  redirect_uri: string;
  expires_at: Date;
}

export async function insertLoginAttempt(
  trx: Knex.Transaction,
  a: { tenantId: string; id: string; providerId: string; stateHash: string; nonce: string; codeVerifier: string; redirectUri: string; expiresAt: Date },
): Promise<void> {
  await trx.raw(
    `insert into oidc_login_attempt (tenant_id, id, provider_id, state_hash, nonce, code_verifier, redirect_uri, expires_at)
     values (?, ?, ?, ?, ?, ?, ?, ?)`,
    [a.tenantId, a.id, a.providerId, a.stateHash, a.nonce, a.codeVerifier, a.redirectUri, a.expiresAt],
  );
}

/** Forgets the tenant's attempts that expired (bounded work: called once per StartOidcLogin). */
export async function pruneLoginAttempts(trx: Knex.Transaction, tenantId: string): Promise<void> {
  await trx.raw(
    `delete from oidc_login_attempt where tenant_id = ? and id in (
       select id from oidc_login_attempt where tenant_id = ? and expires_at < now() limit 100)`,
    [tenantId, tenantId],
  );
}

/** `auth_find_oidc_attempt(state_hash)`: the tenant of a pending attempt (service role, before the tenant is known). */
export async function findLoginAttemptTenant(trx: Knex.Transaction, stateHash: string): Promise<{ tenant_id: string; id: string } | undefined> {
  const { rows } = await trx.raw<{ rows: { tenant_id: string; id: string }[] }>("select tenant_id, id from auth_find_oidc_attempt(?)", [stateHash]);
  return rows[0];
}

/**
 * Consumes an attempt: deletes it and returns it, whether or not it has expired (the caller checks).
 * Of two concurrent callbacks with the same state only one gets the row.
 */
export async function consumeLoginAttempt(trx: Knex.Transaction, tenantId: string, id: string, stateHash: string): Promise<LoginAttemptRow | undefined> {
  const { rows } = await trx.raw<{ rows: LoginAttemptRow[] }>(
    `delete from oidc_login_attempt where tenant_id = ? and id = ? and state_hash = ?
     returning tenant_id, id, provider_id, nonce, code_verifier, redirect_uri, expires_at`,
    [tenantId, id, stateHash],
  );
  return rows[0];
}

/** A row of `oauth_identity`. */
export interface LinkedIdentityRow {
  tenant_id: string;
  id: string;
  user_id: string;
  provider_id: string;
  issuer: string;
  subject: string;
  email: string | null;
  created_at: Date;
  last_login_at: Date | null;
}

const IDENTITY_COLUMNS = "tenant_id, id, user_id, provider_id, issuer, subject, email, created_at, last_login_at";

/** The identity linked to (issuer, subject), locked: the login uses and updates it. */
export async function findIdentityBySubject(trx: Knex.Transaction, tenantId: string, issuer: string, subject: string): Promise<LinkedIdentityRow | undefined> {
  const { rows } = await trx.raw<{ rows: LinkedIdentityRow[] }>(
    `select ${IDENTITY_COLUMNS} from oauth_identity where tenant_id = ? and issuer = ? and subject = ? for update`,
    [tenantId, issuer, subject],
  );
  return rows[0];
}

export async function insertIdentity(
  trx: Knex.Transaction,
  i: { tenantId: string; userId: string; providerId: string; issuer: string; subject: string; email: string },
): Promise<LinkedIdentityRow> {
  const { rows } = await trx.raw<{ rows: LinkedIdentityRow[] }>(
    `insert into oauth_identity (tenant_id, user_id, provider_id, issuer, subject, email, email_verified, last_login_at)
     values (?, ?, ?, ?, ?, ?, true, now()) returning ${IDENTITY_COLUMNS}`,
    [i.tenantId, i.userId, i.providerId, i.issuer, i.subject, i.email],
  );
  return rows[0]!;
}

/** Records a login through an identity (and the email the provider reported this time). */
export async function touchIdentity(trx: Knex.Transaction, tenantId: string, id: string, email: string): Promise<LinkedIdentityRow> {
  const { rows } = await trx.raw<{ rows: LinkedIdentityRow[] }>(
    `update oauth_identity set last_login_at = now(), email = ?, email_verified = true
     where tenant_id = ? and id = ? returning ${IDENTITY_COLUMNS}`,
    [email, tenantId, id],
  );
  return rows[0]!;
}

/** One identity by id. */
export async function findIdentity(trx: Knex.Transaction, tenantId: string, id: string): Promise<LinkedIdentityRow | undefined> {
  const { rows } = await trx.raw<{ rows: LinkedIdentityRow[] }>(`select ${IDENTITY_COLUMNS} from oauth_identity where tenant_id = ? and id = ?`, [tenantId, id]);
  return rows[0];
}

/** The identities of a user, oldest first, after the cursor when given. */
export async function listIdentities(
  trx: Knex.Transaction,
  tenantId: string,
  userId: string,
  q: { after?: { createdAt: string; id: string }; limit: number },
): Promise<LinkedIdentityRow[]> {
  const where = ["tenant_id = ?", "user_id = ?"];
  const bindings: Knex.Value[] = [tenantId, userId];
  if (q.after) {
    where.push("(created_at, id) > (?::timestamptz, ?::uuid)");
    bindings.push(q.after.createdAt, q.after.id);
  }
  const { rows } = await trx.raw<{ rows: LinkedIdentityRow[] }>(
    `select ${IDENTITY_COLUMNS} from oauth_identity where ${where.join(" and ")} order by created_at, id limit ?`,
    [...bindings, q.limit],
  );
  return rows;
}

/** Number of identities linked to a user. */
export async function countIdentities(trx: Knex.Transaction, tenantId: string, userId: string): Promise<number> {
  const { rows } = await trx.raw<{ rows: { n: number }[] }>("select count(*)::int as n from oauth_identity where tenant_id = ? and user_id = ?", [tenantId, userId]);
  return rows[0]!.n;
}

export async function deleteIdentity(trx: Knex.Transaction, tenantId: string, id: string): Promise<void> {
  await trx.raw("delete from oauth_identity where tenant_id = ? and id = ?", [tenantId, id]);
}
