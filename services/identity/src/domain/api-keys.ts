import { createHash, randomBytes } from "node:crypto";
import {
  API_KEY_PREFIX,
  CURSOR_TIMESTAMP,
  CURSOR_UUID,
  decodePageCursor,
  pageOf,
  pageSizeOf,
  roleAtLeast,
  type ApiKeyResolution,
  type Logger,
  type Role,
} from "@promptcraft/platform";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import { withTenant, type Knex, type TenantScope } from "@promptcraft/db";
import { findApiKeyBySecretHash, listApiKeys as listApiKeyRows, touchApiKey, type ApiKeyRow } from "../store/api-keys.js";

/**
 * API keys (issue 3, item 6): long-lived credentials of machine clients, one tenant and one role
 * each. The secret is `pck_` + 32 random bytes in base64url (43 characters), shown once; the
 * database keeps only its SHA-256 (hex, what `auth_find_api_key` looks up) and a short prefix for
 * display. A secret this random needs no slow hash: a hash lookup has no timing side channel worth
 * having, and nothing can be guessed from the prefix (8 of its 43 random characters).
 */

/** Random bytes in a secret. */
export const API_KEY_SECRET_BYTES = 32;
/** Characters of the secret kept for display (`pck_` + 8). */
export const API_KEY_DISPLAY_PREFIX_LENGTH = API_KEY_PREFIX.length + 8;
/** The exact shape of a secret we issue; anything else is refused without a lookup. */
export const API_KEY_SECRET_PATTERN = /^pck_[A-Za-z0-9_-]{43}$/;

/** How long a CreateApiKey retry (same `request_id`) gets the same secret (the contract: 10 minutes). */
export const API_KEY_RETRY_WINDOW_S = 600;

/** Roles a key may have (never owner). */
export type ApiKeyRole = Exclude<Role, "owner">;

export interface NewApiKeySecret {
  secret: string;
  secretHash: string;
  prefix: string;
}

/** A fresh secret, its stored hash and its display prefix. */
export function generateApiKeySecret(): NewApiKeySecret {
  const secret = API_KEY_PREFIX + randomBytes(API_KEY_SECRET_BYTES).toString("base64url");
  return { secret, secretHash: hashApiKeySecret(secret), prefix: secret.slice(0, API_KEY_DISPLAY_PREFIX_LENGTH) };
}

/** SHA-256 hex of the whole secret, as stored in `api_key.secret_hash`. */
export function hashApiKeySecret(secret: string): string {
  return createHash("sha256").update(secret, "utf8").digest("hex");
}

/** Whether a caller with `callerRole` may create a key with `keyRole` (never above their own). */
export function mayGrantRole(callerRole: Role, keyRole: Role): boolean {
  return keyRole !== "owner" && roleAtLeast(callerRole, keyRole);
}

/** State of a key at `now`. */
export function apiKeyState(key: { revokedAt: Date | null; expiresAt: Date | null }, now = Date.now()): "active" | "expired" | "revoked" {
  if (key.revokedAt !== null) return "revoked";
  if (key.expiresAt !== null && key.expiresAt.getTime() <= now) return "expired";
  return "active";
}

/**
 * Resolves a presented secret against the store (identity only: the cross-tenant lookup
 * `auth_find_api_key` is identity's). Uncached; the platform caches around it. An accepted key's
 * `last_used_at` is updated at most once a minute.
 */
export async function resolveApiKey(db: Knex, secret: string, log?: Logger): Promise<ApiKeyResolution> {
  if (!API_KEY_SECRET_PATTERN.test(secret)) return { active: false, reason: ErrorReason.CREDENTIALS_INVALID };
  const row = await findApiKeyBySecretHash(db, hashApiKeySecret(secret));
  if (!row) return { active: false, reason: ErrorReason.CREDENTIALS_INVALID };
  if (row.revokedAt !== null) return { active: false, reason: ErrorReason.CREDENTIALS_REVOKED };
  if (row.expiresAt !== null && row.expiresAt.getTime() <= Date.now()) return { active: false, reason: ErrorReason.CREDENTIALS_EXPIRED };
  if (row.tenantStatus !== "active") return { active: false, reason: ErrorReason.TENANT_SUSPENDED };
  // `last_use_time`: at most one write a minute per key; a failure to record it refuses nothing.
  await touchApiKey(db, row.tenantId, row.id).catch((err: unknown) => log?.warn({ err }, "could not record an API key's use"));
  return {
    active: true,
    auth: { tenantId: row.tenantId, role: row.role, credentialId: row.id, kind: "api_key" },
    ...(row.expiresAt !== null ? { expiresAt: row.expiresAt } : {}),
  };
}

/**
 * A page of the tenant's keys, newest first (`created_at, id` descending); revoked and expired ones
 * only with `showInactive`, to which the page token is bound.
 */
export async function listApiKeys(
  db: Knex,
  scope: TenantScope,
  q: { showInactive: boolean; pageSize: number; pageToken: string },
): Promise<{ keys: ApiKeyRow[]; nextPageToken: string }> {
  const params = { list: "api_keys", t: scope.tenantId, s: q.showInactive };
  const after = decodePageCursor(q.pageToken, params, { createdAt: CURSOR_TIMESTAMP, id: CURSOR_UUID });
  const limit = pageSizeOf(q.pageSize);
  const rows = await withTenant(db, scope, (trx) => listApiKeyRows(trx, scope.tenantId, { limit: limit + 1, showInactive: q.showInactive, after }));
  const { page, nextPageToken } = pageOf(rows, limit, params, (last) => ({ createdAt: last.createdAt.toISOString(), id: last.id }));
  return { keys: page, nextPageToken };
}
