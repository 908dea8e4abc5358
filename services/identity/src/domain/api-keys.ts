import { createHash, randomBytes, randomUUID } from "node:crypto";
import {
  AlreadyExistsError,
  API_KEY_PREFIX,
  apiKeyIdOf,
  CURSOR_TIMESTAMP,
  CURSOR_UUID,
  decodePageCursor,
  NotFoundError,
  pageOf,
  pageSizeOf,
  PermissionDeniedError,
  requireCallerRole,
  ResourceExhaustedError,
  roleAtLeast,
  type Actor,
  type ApiKeyResolution,
  type AuthContext,
  type Logger,
  type Role,
} from "@promptcraft/platform";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import { appendEvents, withTenant, type DbTime, type Knex } from "@promptcraft/db";
import * as store from "../store/api-keys.js";
import { decryptPrivateKey, encryptPrivateKey } from "./key-encryption.js";
import { derivedUuid } from "./request-ids.js";

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

export type ApiKeyRole = store.ApiKeyRole;
export type ApiKeyRow = store.ApiKeyRow;

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
  const row = await store.findApiKeyBySecretHash(db, hashApiKeySecret(secret));
  if (!row) return { active: false, reason: ErrorReason.CREDENTIALS_INVALID };
  if (row.revokedAt !== null) return { active: false, reason: ErrorReason.CREDENTIALS_REVOKED };
  if (row.expiresAt !== null && row.expiresAt.getTime() <= Date.now()) return { active: false, reason: ErrorReason.CREDENTIALS_EXPIRED };
  if (row.tenantStatus !== "active") return { active: false, reason: ErrorReason.TENANT_SUSPENDED };
  // A key never acts beyond its creator now: nothing while a creating user is deactivated or a
  // creating key revoked, and at most their current role (docs/decisions.md).
  if (!row.creatorsActive || row.effectiveRole === null) return { active: false, reason: ErrorReason.CREDENTIALS_REVOKED };
  // `last_use_time`: at most one write a minute per key; a failure to record it refuses nothing.
  await store.touchApiKey(db, row.tenantId, row.id).catch((err: unknown) => log?.warn({ err }, "could not record an API key's use"));
  return {
    active: true,
    auth: { tenantId: row.tenantId, role: row.effectiveRole, credentialId: row.id, kind: "api_key" },
    ...(row.expiresAt !== null ? { expiresAt: row.expiresAt } : {}),
  };
}

/** Associated data of a key's encrypted retry secret: it decrypts only as that key's. */
function retrySecretContext(tenantId: string, id: string): string {
  return `api_key:${tenantId}:${id}`;
}

const keyNotFound = () => new NotFoundError("API key not found");

function scopeOf(caller: AuthContext) {
  return { service: "identity" as const, tenantId: caller.tenantId, userId: caller.userId ?? null };
}

/** What CreateApiKey asks for. */
export interface NewApiKey {
  name: string;
  /** Undefined when the contract's role has no name here (refused like a role above the caller's). */
  role: Role | undefined;
  /** Kept to the microsecond: the key returns the expire_time it was given. */
  expiresAt: DbTime | null;
  /** AIP-155; empty for none. */
  requestId: string;
}

/**
 * The answer to a retried CreateApiKey: the first call's secret while it is kept (10 minutes);
 * the same request id for another key, or a retry after that, is ALREADY_EXISTS (REQUEST_ID_REUSED)
 * naming the key — its secret is gone for good, revoke it and create another.
 */
async function retrySecret(trx: Knex.Transaction, kek: Buffer, key: ApiKeyRow, asked: Pick<NewApiKey, "name" | "role" | "expiresAt">): Promise<string> {
  // Expiry times compare to the microsecond (both are DbTimes, whose ISO text has all six digits).
  const same = key.name === asked.name && key.role === asked.role && (key.expiresAt?.toISOString() ?? null) === (asked.expiresAt?.toISOString() ?? null);
  const stored = same ? await store.findRetrySecret(trx, key.tenantId, key.id, API_KEY_RETRY_WINDOW_S) : undefined;
  if (stored === undefined) {
    throw new AlreadyExistsError(
      same
        ? "request_id was used more than 10 minutes ago; the key's secret is no longer available (revoke the key and create another)"
        : "request_id was already used for a different key",
      { reason: ErrorReason.REQUEST_ID_REUSED, metadata: { api_key_id: key.id } },
    );
  }
  return decryptPrivateKey(stored, kek, retrySecretContext(key.tenantId, key.id));
}

/**
 * CreateApiKey (admin and up): a key with a role no higher than the caller's, under the tenant's
 * `max_api_keys` quota of unrevoked keys. Returns the secret, the only time it exists in clear.
 * With a request id (AIP-155) the key's id is derived from it and the secret kept encrypted (with
 * `kek`) for {@link API_KEY_RETRY_WINDOW_S}, so a retry gets the same key and secret (see `retrySecret`).
 */
export async function createApiKey(db: Knex, kek: Buffer, caller: AuthContext, input: NewApiKey, actor: Actor): Promise<{ key: ApiKeyRow; secret: string }> {
  requireCallerRole(caller, "admin");
  const role = input.role;
  if (!role || !mayGrantRole(caller.role, role)) {
    throw new PermissionDeniedError("a key's role may not exceed your own", {
      reason: ErrorReason.PERMISSION_INSUFFICIENT,
      metadata: { required_role: role ?? "unknown", role: caller.role },
    });
  }
  const name = input.name.trim();
  const generated = generateApiKeySecret();
  const id = input.requestId ? derivedUuid("api_key", caller.tenantId, input.requestId) : randomUUID();
  return withTenant(db, scopeOf(caller), async (trx) => {
    const quota = await store.apiKeyQuota(trx, caller.tenantId);
    const retried = input.requestId ? await store.getApiKey(trx, caller.tenantId, id) : undefined;
    if (retried) return { key: retried, secret: await retrySecret(trx, kek, retried, { name, role, expiresAt: input.expiresAt }) };
    if (quota.max !== null && quota.used >= quota.max) {
      throw new ResourceExhaustedError(`the tenant may have at most ${quota.max} API keys that are not revoked`, {
        reason: ErrorReason.QUOTA_EXCEEDED,
        metadata: { quota: "max_api_keys", limit: String(quota.max) },
      });
    }
    // The key was not there under the tenant lock (apiKeyQuota), so the insert cannot conflict.
    const key = (await store.insertApiKey(trx, {
      tenantId: caller.tenantId,
      id,
      name,
      prefix: generated.prefix,
      secretHash: generated.secretHash,
      role: role as ApiKeyRole, // mayGrantRole never grants owner
      createdBy: caller.userId ?? null,
      createdByApiKeyId: apiKeyIdOf(caller),
      expiresAt: input.expiresAt,
      retrySecret: input.requestId ? encryptPrivateKey(generated.secret, kek, retrySecretContext(caller.tenantId, id)) : null,
    }))!;
    await appendEvents(trx, [
      {
        tenantId: caller.tenantId,
        aggregateType: "api_key",
        aggregateId: key.id,
        eventType: "identity.api_key.created",
        payload: { name: key.name, role: key.role, prefix: key.prefix, expires_at: input.expiresAt?.toISOString() ?? null },
        ...actor,
      },
    ]);
    return { key, secret: generated.secret };
  });
}

/** GetApiKey (admin and up): a key of the caller's tenant, revoked and expired ones included. */
export async function getApiKey(db: Knex, caller: AuthContext, id: string): Promise<ApiKeyRow> {
  requireCallerRole(caller, "admin");
  const key = await withTenant(db, scopeOf(caller), (trx) => store.getApiKey(trx, caller.tenantId, id));
  if (!key) throw keyNotFound();
  return key;
}

/**
 * ListApiKeys (admin and up): a page of the tenant's keys, newest first (`created_at, id`
 * descending); revoked and expired ones only with `showInactive`, to which the page token is bound.
 */
export async function listApiKeys(
  db: Knex,
  caller: AuthContext,
  q: { showInactive: boolean; pageSize: number; pageToken: string },
): Promise<{ keys: ApiKeyRow[]; nextPageToken: string }> {
  requireCallerRole(caller, "admin");
  const params = { list: "api_keys", t: caller.tenantId, s: q.showInactive };
  const after = decodePageCursor(q.pageToken, params, { createdAt: CURSOR_TIMESTAMP, id: CURSOR_UUID });
  const limit = pageSizeOf(q.pageSize);
  const rows = await withTenant(db, scopeOf(caller), (trx) => store.listApiKeys(trx, caller.tenantId, { limit: limit + 1, showInactive: q.showInactive, after }));
  const { page, nextPageToken } = pageOf(rows, limit, params, (last) => ({ createdAt: last.createdAt.toISOString(), id: last.id }));
  return { keys: page, nextPageToken };
}

/** RevokeApiKey (admin and up): idempotent; a key revoked already is returned as it is, without a second event. */
export async function revokeApiKey(db: Knex, caller: AuthContext, id: string, actor: Actor): Promise<ApiKeyRow> {
  requireCallerRole(caller, "admin");
  const key = await withTenant(db, scopeOf(caller), async (trx) => {
    const revoked = await store.revokeApiKey(trx, caller.tenantId, id);
    if (!revoked) return store.getApiKey(trx, caller.tenantId, id); // already revoked, or none
    await appendEvents(trx, [
      {
        tenantId: caller.tenantId,
        aggregateType: "api_key",
        aggregateId: revoked.id,
        eventType: "identity.api_key.revoked",
        payload: { name: revoked.name, prefix: revoked.prefix },
        ...actor,
      },
    ]);
    return revoked;
  });
  if (!key) throw keyNotFound();
  return key;
}
