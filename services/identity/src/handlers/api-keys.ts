import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { appendEvents, withTenant } from "@promptcraft/db";
import {
  actorOf,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  requireRole,
  ResourceExhaustedError,
  tenantScope,
  type Role as RoleName,
  type ServiceDeps,
  type ServiceHandlers,
} from "@promptcraft/platform";
import type { IdentityService } from "@promptcraft/proto/promptcraft/identity/v1/identity_service_pb";
import { ApiKeySchema, ApiKeyState, Role, type ApiKey } from "@promptcraft/proto/promptcraft/identity/v1/resources_pb";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import type { IdentityConfig } from "../config.js";
import { apiKeyState, generateApiKeySecret, mayGrantRole, type ApiKeyRole } from "../domain/api-keys.js";
import * as store from "../store/api-keys.js";
import type { ApiKeyRow } from "../store/api-keys.js";

const ROLE_TO_PROTO: Record<RoleName, Role> = { owner: Role.OWNER, admin: Role.ADMIN, editor: Role.EDITOR, viewer: Role.VIEWER };
const ROLE_FROM_PROTO: Partial<Record<Role, RoleName>> = { [Role.OWNER]: "owner", [Role.ADMIN]: "admin", [Role.EDITOR]: "editor", [Role.VIEWER]: "viewer" };
const STATE_TO_PROTO = { active: ApiKeyState.ACTIVE, expired: ApiKeyState.EXPIRED, revoked: ApiKeyState.REVOKED } as const;

const DEFAULT_PAGE_SIZE = 50;
const PAGE_TOKEN_TTL_MS = 24 * 3600 * 1000;

function toProto(row: ApiKeyRow): ApiKey {
  return create(ApiKeySchema, {
    id: row.id,
    tenantId: row.tenantId,
    displayName: row.name,
    role: ROLE_TO_PROTO[row.role],
    secretPrefix: row.prefix,
    expireTime: row.expiresAt ? timestampFromDate(row.expiresAt) : undefined,
    state: STATE_TO_PROTO[apiKeyState(row)],
    creatorId: row.createdBy ?? "",
    createTime: timestampFromDate(row.createdAt),
    lastUseTime: row.lastUsedAt ? timestampFromDate(row.lastUsedAt) : undefined,
    revokeTime: row.revokedAt ? timestampFromDate(row.revokedAt) : undefined,
  });
}

/** Page tokens: opaque base64url JSON bound to the request's filter, valid 24 hours. */
interface PageToken {
  v: 1;
  c: string;
  i: string;
  s: boolean;
  t: number;
}

function encodePageToken(row: ApiKeyRow, showInactive: boolean): string {
  const token: PageToken = { v: 1, c: row.createdAtText, i: row.id, s: showInactive, t: Date.now() };
  return Buffer.from(JSON.stringify(token)).toString("base64url");
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const TIMESTAMP_TEXT = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?[+-]\d{2}(:\d{2}){0,2}$/;

function decodePageToken(value: string, showInactive: boolean): { createdAtText: string; id: string } {
  const bad = () =>
    new InvalidArgumentError({ field: "page_token", description: "invalid or expired page token" }, { reason: ErrorReason.PAGE_TOKEN_INVALID });
  let token: Partial<PageToken>;
  try {
    token = JSON.parse(Buffer.from(value, "base64url").toString("utf8")) as Partial<PageToken>;
  } catch {
    throw bad();
  }
  if (token === null || typeof token !== "object" || token.v !== 1) throw bad();
  if (typeof token.c !== "string" || !TIMESTAMP_TEXT.test(token.c) || typeof token.i !== "string" || !UUID.test(token.i)) throw bad();
  if (token.s !== showInactive || typeof token.t !== "number" || Date.now() - token.t > PAGE_TOKEN_TTL_MS) throw bad();
  return { createdAtText: token.c, id: token.i };
}

/** IdentityService: API keys (CreateApiKey, GetApiKey, ListApiKeys, RevokeApiKey). Admin and up. */
export function apiKeyHandlers(deps: ServiceDeps<IdentityConfig>): ServiceHandlers<typeof IdentityService> {
  const { db } = deps;
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
      const expiresAt = input.expireTime ? timestampDate(input.expireTime) : null;
      const generated = generateApiKeySecret();
      const actor = actorOf(ctx);
      const row = await withTenant(db, tenantScope(ctx, "identity"), async (trx) => {
        const quota = await store.apiKeyQuota(trx, caller.tenantId);
        if (quota.max !== null && quota.used >= quota.max) {
          throw new ResourceExhaustedError(`the tenant may have at most ${quota.max} API keys that are not revoked`, {
            reason: ErrorReason.QUOTA_EXCEEDED,
            metadata: { quota: "max_api_keys", limit: String(quota.max) },
          });
        }
        const inserted = await store.insertApiKey(trx, {
          tenantId: caller.tenantId,
          name: input.displayName.trim(),
          prefix: generated.prefix,
          secretHash: generated.secretHash,
          role: role as ApiKeyRole,
          createdBy: caller.userId ?? null,
          expiresAt,
        });
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
        return inserted;
      });
      return { apiKey: toProto(row), secret: generated.secret };
    },

    getApiKey: async (request, ctx) => {
      const caller = requireRole(ctx, "admin");
      const row = await withTenant(db, tenantScope(ctx, "identity"), (trx) => store.getApiKey(trx, caller.tenantId, request.apiKeyId));
      if (!row) throw new NotFoundError("API key not found");
      return toProto(row);
    },

    listApiKeys: async (request, ctx) => {
      const caller = requireRole(ctx, "admin");
      const pageSize = request.pageSize === 0 ? DEFAULT_PAGE_SIZE : request.pageSize;
      const after = request.pageToken === "" ? undefined : decodePageToken(request.pageToken, request.showInactive);
      const rows = await withTenant(db, tenantScope(ctx, "identity"), (trx) =>
        store.listApiKeys(trx, caller.tenantId, { limit: pageSize + 1, showInactive: request.showInactive, after }),
      );
      const page = rows.slice(0, pageSize);
      const last = page[page.length - 1];
      return {
        apiKeys: page.map(toProto),
        nextPageToken: rows.length > pageSize && last ? encodePageToken(last, request.showInactive) : "",
      };
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
