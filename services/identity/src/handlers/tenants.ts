import { fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";
import { actorOf, callerOf, InvalidArgumentError, isPlatformAdmin, requirePlatformAdmin, requireRole, systemActor, timestampFromDb, type AuthContext, type ServiceDeps, type ServiceHandlers } from "@promptcraft/platform";
import type { CallContext } from "@promptcraft/platform";
import type { IdentityService } from "@promptcraft/proto/promptcraft/identity/v1/identity_service_pb";
import {
  TenantQuotasSchema,
  TenantSettingsSchema,
  TenantState,
  type Tenant,
  type TenantQuotas,
  type TenantSettings,
} from "@promptcraft/proto/promptcraft/identity/v1/resources_pb";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { TenantSchema } from "@promptcraft/proto/promptcraft/identity/v1/resources_pb";
import type { IdentityConfig } from "../config.js";
import * as tenants from "../domain/tenants.js";
import { userToProto } from "./users.js";

/** Authenticates a caller of a method that is public in `serve()` (`LocalCredentials.authenticate`). */
export type Authenticate = (ctx: CallContext) => Promise<AuthContext>;

/** Quotas and settings are stored as their protobuf JSON with proto field names (`max_users`). */
export function quotasToJson(q: TenantQuotas | undefined): Record<string, unknown> {
  return q ? (toJson(TenantQuotasSchema, q, { useProtoFieldName: true }) as Record<string, unknown>) : {};
}

/**
 * Settings as stored. On update (`explicit`) implicit fields are written too, so that an empty
 * `protected_labels` in the update protects nothing; on create an empty list keeps the default.
 */
export function settingsToJson(s: TenantSettings | undefined, explicit: boolean): Record<string, unknown> {
  if (!s) return {};
  if (s.custom && JSON.stringify(s.custom).length > 65536) {
    throw new InvalidArgumentError({ field: "tenant.settings.custom", description: "at most 64 KiB serialized" });
  }
  return toJson(TenantSettingsSchema, s, { useProtoFieldName: true, alwaysEmitImplicit: explicit }) as Record<string, unknown>;
}

function parseOr<T>(f: () => T): T | undefined {
  try {
    return f();
  } catch {
    return undefined;
  }
}

/** A tenant row as the contract's Tenant. */
export function tenantToProto(row: tenants.TenantRow): MessageInitShape<typeof TenantSchema> {
  const settings = { ...tenants.DEFAULT_SETTINGS, ...row.settings };
  return {
    id: row.id,
    slug: row.slug,
    displayName: row.name,
    plan: row.plan,
    state: row.status === "suspended" ? TenantState.SUSPENDED : TenantState.ACTIVE,
    quotas: parseOr(() => fromJson(TenantQuotasSchema, row.quotas as JsonValue, { ignoreUnknownFields: true })),
    settings: parseOr(() => fromJson(TenantSettingsSchema, settings as JsonValue, { ignoreUnknownFields: true })),
    createTime: timestampFromDb(row.created_at),
    updateTime: timestampFromDb(row.updated_at),
    suspendTime: row.suspended_at ? timestampFromDb(row.suspended_at) : undefined,
    suspendReason: row.suspend_reason ?? "",
    etag: row.row_version,
  };
}

/** Field-mask paths of UpdateTenant a tenant's owners and admins may use; `*` means these. */
const MEMBER_PATHS = ["display_name", "settings"];
/** What `*` means for the platform administrator. */
const ADMIN_PATHS = ["display_name", "plan", "quotas", "settings"];

/**
 * The changes an update mask asks for. `quotas.<field>` / `settings.<field>` (the proto rule lists
 * the fields) change one field: its value from the request, or `null` (cleared) when unset there.
 */
function changesOf(tenant: Tenant, paths: readonly string[], platformAdmin: boolean): tenants.TenantChanges {
  const expanded = new Set(paths.flatMap((p) => (p === "*" ? (platformAdmin ? ADMIN_PATHS : MEMBER_PATHS) : [p])));
  const changes: tenants.TenantChanges = {};
  if (expanded.has("display_name")) changes.name = tenant.displayName;
  if (expanded.has("plan")) changes.plan = tenant.plan || "free";
  const quotas = quotasToJson(tenant.quotas);
  const settings = settingsToJson(tenant.settings, true);
  if (expanded.has("quotas")) changes.quotas = quotas;
  if (expanded.has("settings")) changes.settings = settings;
  for (const path of expanded) {
    const [message, field] = path.split(".");
    if (field === undefined) continue;
    if (message === "quotas") (changes.quotaFields ??= {})[field] = quotas[field] ?? null;
    if (message === "settings") (changes.settingFields ??= {})[field] = settings[field] ?? null;
  }
  return changes;
}

/**
 * IdentityService: tenants (CreateTenant, GetTenant, ListTenants, UpdateTenant, SuspendTenant,
 * ResumeTenant). CreateTenant, ListTenants, SuspendTenant and ResumeTenant are platform-admin
 * methods (public in `serve()`, checked by `requirePlatformAdmin`). GetTenant and UpdateTenant take
 * the platform-admin credential or a member's: they are public in `serve()` too, and authenticate
 * a member with `authenticate` (the same checks as every service's interceptor).
 */
export function tenantHandlers(deps: ServiceDeps<IdentityConfig>, authenticate: Authenticate): ServiceHandlers<typeof IdentityService> {
  const db = deps.db;
  const adminToken = deps.config.PLATFORM_ADMIN_TOKEN;
  /** A member's call: authenticated here, as the platform would have done; the caller with the call's signal. */
  const member = async (ctx: CallContext) => {
    ctx.auth = await authenticate(ctx);
    return callerOf(ctx);
  };
  return {
    createTenant: async (request, ctx) => {
      requirePlatformAdmin(ctx, deps.config.PLATFORM_ADMIN_TOKEN);
      const t = request.tenant!;
      const o = request.owner!;
      const { tenant, owner, invitationToken } = await tenants.createTenant(
        db,
        {
          slug: t.slug,
          name: t.displayName,
          plan: t.plan,
          quotas: quotasToJson(t.quotas),
          settings: t.settings ? { ...tenants.DEFAULT_SETTINGS, ...settingsToJson(t.settings, false) } : undefined,
          owner: { email: o.email, displayName: o.displayName, password: request.ownerPassword },
          requestId: request.requestId,
        },
        systemActor(ctx.requestId),
        ctx.signal,
      );
      return { tenant: tenantToProto(tenant), owner: userToProto({ user: owner, purgeTime: undefined }), invitationToken };
    },
    listTenants: async (request, ctx) => {
      requirePlatformAdmin(ctx, deps.config.PLATFORM_ADMIN_TOKEN);
      const status = request.state === TenantState.ACTIVE ? "active" : request.state === TenantState.SUSPENDED ? "suspended" : null;
      const page = await tenants.listTenants(db, { status, pageSize: request.pageSize, pageToken: request.pageToken }, ctx.signal);
      return { tenants: page.tenants.map(tenantToProto), nextPageToken: page.nextPageToken };
    },
    getTenant: async (request, ctx) => {
      if (isPlatformAdmin(ctx, adminToken)) {
        if (request.tenantId === "") throw new InvalidArgumentError({ field: "tenant_id", description: "a platform admin names the tenant" });
        return tenantToProto(await tenants.getTenant(db, { tenantId: request.tenantId, signal: ctx.signal }, request.tenantId));
      }
      const caller = await member(ctx);
      return tenantToProto(await tenants.getTenant(db, caller, request.tenantId || caller.tenantId));
    },
    updateTenant: async (request, ctx) => {
      const t = request.tenant!;
      const paths = request.updateMask?.paths ?? [];
      if (isPlatformAdmin(ctx, adminToken)) {
        if (t.id === "") throw new InvalidArgumentError({ field: "tenant.id", description: "a platform admin names the tenant" });
        return tenantToProto(await tenants.updateTenant(db, { tenantId: t.id, signal: ctx.signal }, t.id, t.etag, changesOf(t, paths, true), systemActor(ctx.requestId), true));
      }
      await member(ctx);
      const caller = requireRole(ctx, "admin");
      const row = await tenants.updateTenant(db, caller, t.id || caller.tenantId, t.etag, changesOf(t, paths, false), actorOf(ctx));
      return tenantToProto(row);
    },
    suspendTenant: async (request, ctx) => {
      requirePlatformAdmin(ctx, deps.config.PLATFORM_ADMIN_TOKEN);
      const row = await tenants.setSuspended(db, request.tenantId, true, { etag: request.etag, reason: request.reason }, systemActor(ctx.requestId), ctx.signal);
      return tenantToProto(row);
    },
    resumeTenant: async (request, ctx) => {
      requirePlatformAdmin(ctx, deps.config.PLATFORM_ADMIN_TOKEN);
      return tenantToProto(await tenants.setSuspended(db, request.tenantId, false, { etag: request.etag }, systemActor(ctx.requestId), ctx.signal));
    },
  };
}
