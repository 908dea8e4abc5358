import type { MessageInitShape } from "@bufbuild/protobuf";
import { actorOf, callerOf, dbTimeFromTimestamp, principalName, timestampFromDb, type ServiceDeps, type ServiceHandlers } from "@promptcraft/platform";
import type { IdentityService } from "@promptcraft/proto/promptcraft/identity/v1/identity_service_pb";
import { ApiKeyState, type ApiKeySchema } from "@promptcraft/proto/promptcraft/identity/v1/resources_pb";
import type { IdentityConfig } from "../config.js";
import * as apiKeys from "../domain/api-keys.js";
import { keyEncryptionKey } from "../domain/key-encryption.js";
import { ROLE_FROM_PROTO, ROLE_TO_PROTO } from "./roles.js";

const STATE_TO_PROTO = { active: ApiKeyState.ACTIVE, expired: ApiKeyState.EXPIRED, revoked: ApiKeyState.REVOKED } as const;

/** A key as the contract's ApiKey (never its secret or hash). */
function apiKeyToProto(row: apiKeys.ApiKeyRow): MessageInitShape<typeof ApiKeySchema> {
  return {
    id: row.id,
    tenantId: row.tenantId,
    displayName: row.name,
    role: ROLE_TO_PROTO[row.role],
    secretPrefix: row.prefix,
    expireTime: row.expiresAt ? timestampFromDb(row.expiresAt) : undefined,
    state: STATE_TO_PROTO[apiKeys.apiKeyState(row)],
    creatorId: principalName(row.createdBy, row.createdByApiKeyId),
    createTime: timestampFromDb(row.createdAt),
    lastUseTime: row.lastUsedAt ? timestampFromDb(row.lastUsedAt) : undefined,
    revokeTime: row.revokedAt ? timestampFromDb(row.revokedAt) : undefined,
  };
}

/** IdentityService: API keys (CreateApiKey, GetApiKey, ListApiKeys, RevokeApiKey); the rules are in domain/api-keys.ts. */
export function apiKeyHandlers(deps: ServiceDeps<IdentityConfig>): ServiceHandlers<typeof IdentityService> {
  const { db } = deps;
  // Encrypts the secrets kept for CreateApiKey retries. The start-up already warned about a development key.
  const kek = keyEncryptionKey(deps.config.IDENTITY_KEY_ENCRYPTION_KEY, deps.config.NODE_ENV);
  return {
    createApiKey: async (request, ctx) => {
      const input = request.apiKey!;
      const created = await apiKeys.createApiKey(
        db,
        kek,
        callerOf(ctx),
        {
          name: input.displayName,
          role: ROLE_FROM_PROTO[input.role],
          // Beyond year 9999 INVALID_ARGUMENT on the field.
          expiresAt: input.expireTime ? dbTimeFromTimestamp(input.expireTime, "api_key.expire_time") : null,
          requestId: request.requestId,
        },
        actorOf(ctx),
      );
      return { apiKey: apiKeyToProto(created.key), secret: created.secret };
    },
    getApiKey: async (request, ctx) => apiKeyToProto(await apiKeys.getApiKey(db, callerOf(ctx), request.apiKeyId)),
    listApiKeys: async (request, ctx) => {
      const page = await apiKeys.listApiKeys(db, callerOf(ctx), { showInactive: request.showInactive, pageSize: request.pageSize, pageToken: request.pageToken });
      return { apiKeys: page.keys.map(apiKeyToProto), nextPageToken: page.nextPageToken };
    },
    revokeApiKey: async (request, ctx) => apiKeyToProto(await apiKeys.revokeApiKey(db, callerOf(ctx), request.apiKeyId, actorOf(ctx))),
  };
}
