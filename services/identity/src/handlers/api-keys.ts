import { create } from "@bufbuild/protobuf";
import { randomUUID } from "node:crypto";
import { appendEvents, withTenant, type DbTime, type Knex } from "@promptcraft/db";
import {
  actorOf,
  AlreadyExistsError,
  dbTimeFromTimestamp,
  NotFoundError,
  PermissionDeniedError,
  requireRole,
  ResourceExhaustedError,
  tenantScope,
  timestampFromDb,
  type Role as RoleName,
  type ServiceDeps,
  type ServiceHandlers,
} from "@promptcraft/platform";
import type { IdentityService } from "@promptcraft/proto/promptcraft/identity/v1/identity_service_pb";
import { ApiKeySchema, ApiKeyState, type ApiKey } from "@promptcraft/proto/promptcraft/identity/v1/resources_pb";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import { ROLE_FROM_PROTO, ROLE_TO_PROTO } from "./roles.js";
import type { IdentityConfig } from "../config.js";
import { API_KEY_RETRY_WINDOW_S, apiKeyState, generateApiKeySecret, listApiKeys, mayGrantRole, type ApiKeyRole } from "../domain/api-keys.js";
import { decryptPrivateKey, encryptPrivateKey, keyEncryptionKey } from "../domain/key-encryption.js";
import { derivedUuid } from "../domain/tenants.js";
import * as store from "../store/api-keys.js";
import type { ApiKeyRow } from "../store/api-keys.js";

const STATE_TO_PROTO = { active: ApiKeyState.ACTIVE, expired: ApiKeyState.EXPIRED, revoked: ApiKeyState.REVOKED } as const;


function toProto(row: ApiKeyRow): ApiKey {
  return create(ApiKeySchema, {
    id: row.id,
    tenantId: row.tenantId,
    displayName: row.name,
    role: ROLE_TO_PROTO[row.role],
    secretPrefix: row.prefix,
    expireTime: row.expiresAt ? timestampFromDb(row.expiresAt) : undefined,
    state: STATE_TO_PROTO[apiKeyState(row)],
    creatorId: row.createdBy ?? "",
    createTime: timestampFromDb(row.createdAt),
    lastUseTime: row.lastUsedAt ? timestampFromDb(row.lastUsedAt) : undefined,
    revokeTime: row.revokedAt ? timestampFromDb(row.revokedAt) : undefined,
  });
}

/** Associated data of a key's encrypted retry secret: it decrypts only as that key's. */
function retrySecretContext(tenantId: string, id: string): string {
  return `api_key:${tenantId}:${id}`;
}

/** IdentityService: API keys (CreateApiKey, GetApiKey, ListApiKeys, RevokeApiKey). Admin and up. */
export function apiKeyHandlers(deps: ServiceDeps<IdentityConfig>): ServiceHandlers<typeof IdentityService> {
  const { db } = deps;
  // The start-up already warned about a development key-encryption key.
  const kek = keyEncryptionKey(deps.config.IDENTITY_KEY_ENCRYPTION_KEY, deps.config.NODE_ENV);

  /**
   * The answer to a retried CreateApiKey: the first call's secret while it is kept (10 minutes);
   * the same request id for another key, or a retry after that, is ALREADY_EXISTS (REQUEST_ID_REUSED)
   * naming the key — its secret is gone for good, revoke it and create another.
   */
  async function retrySecret(trx: Knex.Transaction, key: ApiKeyRow, asked: { name: string; role: RoleName | undefined; expiresAt: DbTime | null }): Promise<string> {
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
  return {
    createApiKey: async (request, ctx) => {
      const caller = requireRole(ctx, "admin");
      const input = request.apiKey!;
      const role = ROLE_FROM_PROTO[input.role];
      if (!role || !mayGrantRole(caller.role, role)) {
        throw new PermissionDeniedError("a key's role may not exceed your own", {
          reason: ErrorReason.PERMISSION_INSUFFICIENT,
          metadata: { required_role: role ?? "unknown", role: caller.role },
        });
      }
      // Kept to the microsecond (the key returns the expire_time it was given); beyond year 9999 INVALID_ARGUMENT.
      const expiresAt = input.expireTime ? dbTimeFromTimestamp(input.expireTime, "api_key.expire_time") : null;
      const generated = generateApiKeySecret();
      const actor = actorOf(ctx);
      // AIP-155: the key's id is derived from the request id, so a retry finds the first call's key.
      const id = request.requestId ? derivedUuid("api_key", caller.tenantId, request.requestId) : randomUUID();
      const sealed = (secret: string) => encryptPrivateKey(secret, kek, retrySecretContext(caller.tenantId, id));
      const created = await withTenant(db, tenantScope(ctx, "identity"), async (trx) => {
        const quota = await store.apiKeyQuota(trx, caller.tenantId);
        const retried = request.requestId ? await store.getApiKey(trx, caller.tenantId, id) : undefined;
        if (retried) return { row: retried, secret: await retrySecret(trx, retried, { name: input.displayName.trim(), role, expiresAt }) };
        if (quota.max !== null && quota.used >= quota.max) {
          throw new ResourceExhaustedError(`the tenant may have at most ${quota.max} API keys that are not revoked`, {
            reason: ErrorReason.QUOTA_EXCEEDED,
            metadata: { quota: "max_api_keys", limit: String(quota.max) },
          });
        }
        const inserted = (await store.insertApiKey(trx, {
          tenantId: caller.tenantId,
          id,
          name: input.displayName.trim(),
          prefix: generated.prefix,
          secretHash: generated.secretHash,
          role: role as ApiKeyRole,
          createdBy: caller.userId ?? null,
          expiresAt,
          retrySecret: request.requestId ? sealed(generated.secret) : null,
        }))!;
        await appendEvents(trx, [
          {
            tenantId: caller.tenantId,
            aggregateType: "api_key",
            aggregateId: inserted.id,
            eventType: "api_key.created",
            payload: { name: inserted.name, role: inserted.role, prefix: inserted.prefix, expires_at: expiresAt?.toISOString() ?? null },
            ...actor,
          },
        ]);
        return { row: inserted, secret: generated.secret };
      });
      return { apiKey: toProto(created.row), secret: created.secret };
    },

    getApiKey: async (request, ctx) => {
      const caller = requireRole(ctx, "admin");
      const row = await withTenant(db, tenantScope(ctx, "identity"), (trx) => store.getApiKey(trx, caller.tenantId, request.apiKeyId));
      if (!row) throw new NotFoundError("API key not found");
      return toProto(row);
    },

    listApiKeys: async (request, ctx) => {
      requireRole(ctx, "admin");
      const page = await listApiKeys(db, tenantScope(ctx, "identity"), request);
      return { apiKeys: page.keys.map(toProto), nextPageToken: page.nextPageToken };
    },

    revokeApiKey: async (request, ctx) => {
      const caller = requireRole(ctx, "admin");
      const actor = actorOf(ctx);
      const row = await withTenant(db, tenantScope(ctx, "identity"), async (trx) => {
        const revoked = await store.revokeApiKey(trx, caller.tenantId, request.apiKeyId);
        if (!revoked) return store.getApiKey(trx, caller.tenantId, request.apiKeyId); // already revoked, or none
        await appendEvents(trx, [
          {
            tenantId: caller.tenantId,
            aggregateType: "api_key",
            aggregateId: revoked.id,
            eventType: "api_key.revoked",
            payload: { name: revoked.name, prefix: revoked.prefix },
            ...actor,
          },
        ]);
        return revoked;
      });
      if (!row) throw new NotFoundError("API key not found");
      return toProto(row);
    },
  };
}
