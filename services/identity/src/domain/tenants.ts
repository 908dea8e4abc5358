import { randomUUID } from "node:crypto";
import { appendEvents, canonicalJson, withServiceRole, withTenant, type Knex, type TenantScope } from "@promptcraft/db";
import {
  AlreadyExistsError,
  checkEtag,
  CURSOR_TIMESTAMP,
  CURSOR_UUID,
  decodePageCursor,
  InvalidArgumentError,
  NotFoundError,
  pageOf,
  pageSizeOf,
  PermissionDeniedError,
  type Actor,
} from "@promptcraft/platform";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import * as store from "../store/tenants.js";
import { insertUser, findUser, type UserRow } from "../store/users.js";
import { checkPasswordPolicy, hashPassword } from "./passwords.js";
import { issueInvitation } from "./invitations.js";
import { derivedUuid } from "./request-ids.js";

/**
 * Tenants: creation with the first owner (platform admin), reading and updating one's own tenant,
 * suspension and resumption (platform admin). Every change appends its event in its transaction.
 */

export type TenantRow = store.TenantRow;

/** Settings a new tenant gets unless the request sets them. */
export const DEFAULT_SETTINGS: Record<string, unknown> = { protected_labels: ["production"] };

function isUniqueViolation(err: unknown, constraint: string): boolean {
  const e = err as { code?: unknown; constraint?: unknown } | null;
  return e?.code === "23505" && e.constraint === constraint;
}

export interface NewTenant {
  slug: string;
  name: string;
  plan: string;
  quotas: Record<string, unknown>;
  /** Undefined: the defaults. */
  settings: Record<string, unknown> | undefined;
  owner: { email: string; displayName: string; password: string };
  requestId: string;
}

/**
 * Creates the tenant and its first owner in one transaction; an owner without a password is
 * invited (`invitationToken`). With a request id the ids are derived from it, so a retry finds the
 * first call's rows and returns them (a different request with the same id: ALREADY_EXISTS,
 * REQUEST_ID_REUSED; a still invited owner gets a new token, see users.createUser). A taken slug:
 * ALREADY_EXISTS.
 */
export async function createTenant(
  db: Knex,
  input: NewTenant,
  actor: Actor,
  signal?: AbortSignal,
): Promise<{ tenant: TenantRow; owner: UserRow; created: boolean; invitationToken: string }> {
  const tenantId = input.requestId ? derivedUuid("tenant", input.requestId) : randomUUID();
  const ownerId = input.requestId ? derivedUuid("tenant-owner", input.requestId) : randomUUID();
  checkPasswordPolicy(input.owner.password, input.owner.email, "owner_password");
  const passwordHash = input.owner.password ? await hashPassword(input.owner.password) : null;
  try {
    return await withTenant(db, { service: "identity", tenantId, signal }, async (trx) => {
      const tenant = await store.insertTenant(trx, {
        id: tenantId,
        slug: input.slug,
        name: input.name,
        plan: input.plan || "free",
        quotas: input.quotas,
        settings: input.settings ?? DEFAULT_SETTINGS,
      });
      if (!tenant) {
        const existing = await store.findTenant(trx, tenantId);
        const owner = existing && (await findUser(trx, tenantId, ownerId));
        if (!existing || !owner || existing.slug !== input.slug || owner.email.toLowerCase() !== input.owner.email.toLowerCase()) {
          throw new AlreadyExistsError("request_id was already used for a different request", { reason: ErrorReason.REQUEST_ID_REUSED });
        }
        const reinvite = passwordHash === null && owner.status === "invited" && !owner.deleted_at;
        return { tenant: existing, owner, created: false, invitationToken: reinvite ? (await issueInvitation(trx, owner, actor)).token : "" };
      }
      const owner = (await insertUser(trx, {
        tenantId,
        id: ownerId,
        email: input.owner.email,
        displayName: input.owner.displayName || input.owner.email.split("@")[0]!,
        role: "owner",
        passwordHash,
      }))!;
      await appendEvents(trx, [
        {
          tenantId,
          aggregateType: "tenant",
          aggregateId: tenantId,
          aggregateVersion: BigInt(tenant.row_version),
          eventType: "identity.tenant.created",
          payload: { slug: tenant.slug, name: tenant.name, plan: tenant.plan },
          ...actor,
        },
        {
          tenantId,
          aggregateType: "user",
          aggregateId: owner.id,
          aggregateVersion: BigInt(owner.row_version),
          eventType: "identity.user.created",
          payload: { email: owner.email, role: owner.role, status: owner.status },
          ...actor,
        },
      ]);
      const invitationToken = passwordHash === null ? (await issueInvitation(trx, owner, actor)).token : "";
      return { tenant, owner, created: true, invitationToken };
    });
  } catch (err) {
    if (isUniqueViolation(err, "tenant_slug_key")) {
      throw new AlreadyExistsError(`the slug ${input.slug} is taken`, { metadata: { slug: input.slug } });
    }
    throw err;
  }
}

/** Who a tenant is read or changed for: a member (platform `callerOf`, with the call's signal) or a platform admin naming the tenant. */
export interface CallerScope {
  tenantId: string;
  userId?: string | null;
  /** Stops the transaction with the call. */
  signal?: AbortSignal;
}

function identityScope(scope: CallerScope): TenantScope {
  return { service: "identity", tenantId: scope.tenantId, userId: scope.userId ?? null, signal: scope.signal };
}

/** A tenant; NOT_FOUND if it does not exist (or is not the scope's tenant). */
export async function getTenant(db: Knex, scope: CallerScope, id: string): Promise<TenantRow> {
  if (id !== scope.tenantId) throw new NotFoundError("tenant not found");
  const tenant = await withTenant(db, identityScope(scope), (trx) => store.findTenant(trx, id));
  if (!tenant) throw new NotFoundError("tenant not found");
  return tenant;
}

export interface TenantChanges {
  name?: string;
  plan?: string;
  quotas?: Record<string, unknown>;
  settings?: Record<string, unknown>;
  /** Single quotas to set (`quotas.<field>` paths); `null` clears one (unlimited). Applied after `quotas`. */
  quotaFields?: Record<string, unknown>;
  /** Single settings to set (`settings.<field>` paths); `null` clears one (its default). Applied after `settings`. */
  settingFields?: Record<string, unknown>;
}

/** `base` with `fields` set, `null` ones removed. */
function withFields(base: Record<string, unknown>, fields: Record<string, unknown>): Record<string, unknown> {
  const merged = { ...base };
  for (const [key, value] of Object.entries(fields)) {
    if (value === null) delete merged[key];
    else merged[key] = value;
  }
  return merged;
}

/**
 * Applies the changes (already restricted to the update mask). Plan and quotas need a platform
 * admin (`platformAdmin`). A change that changes nothing writes nothing and returns the tenant.
 */
export async function updateTenant(
  db: Knex,
  scope: CallerScope,
  id: string,
  etag: string,
  changes: TenantChanges,
  actor: Actor,
  platformAdmin = false,
): Promise<TenantRow> {
  if (id !== scope.tenantId) throw new NotFoundError("tenant not found");
  if (!platformAdmin && (changes.plan !== undefined || changes.quotas !== undefined || changes.quotaFields !== undefined)) {
    throw new PermissionDeniedError("only a platform administrator may change plan and quotas", { reason: ErrorReason.PLATFORM_ADMIN_REQUIRED });
  }
  if (changes.name !== undefined && changes.name.trim() === "") {
    throw new InvalidArgumentError({ field: "tenant.display_name", description: "display_name must not be empty" });
  }
  return withTenant(db, identityScope(scope), async (trx) => {
    const current = await store.findTenant(trx, id, true);
    if (!current) throw new NotFoundError("tenant not found");
    checkEtag(etag, current.row_version, "tenant");
    const diff: TenantChanges = {};
    if (changes.name !== undefined && changes.name !== current.name) diff.name = changes.name;
    if (changes.plan !== undefined && changes.plan !== current.plan) diff.plan = changes.plan;
    const quotas = changes.quotaFields ? withFields(changes.quotas ?? current.quotas, changes.quotaFields) : changes.quotas;
    const settings = changes.settingFields ? withFields(changes.settings ?? current.settings, changes.settingFields) : changes.settings;
    if (quotas !== undefined && canonicalJson(quotas) !== canonicalJson(current.quotas)) diff.quotas = quotas;
    if (settings !== undefined && canonicalJson(settings) !== canonicalJson(current.settings)) diff.settings = settings;
    const fields = Object.keys(diff);
    if (fields.length === 0) return current;
    const updated = await store.updateTenant(trx, id, diff);
    await appendEvents(trx, [
      {
        tenantId: id,
        aggregateType: "tenant",
        aggregateId: id,
        aggregateVersion: BigInt(updated.row_version),
        eventType: "identity.tenant.updated",
        payload: { fields, ...diff },
        ...actor,
      },
    ]);
    return updated;
  });
}

/**
 * Suspends (with the reason, stored on the tenant until it is resumed) or resumes a tenant (platform
 * admin). Idempotent: suspending a suspended tenant changes nothing — it keeps the reason it was
 * suspended for, as a retry must — and appends no event; resuming clears the reason.
 */
export async function setSuspended(
  db: Knex,
  id: string,
  suspend: boolean,
  opts: { etag: string; reason?: string },
  actor: Actor,
  signal?: AbortSignal,
): Promise<TenantRow> {
  const reason = opts.reason?.trim() ?? "";
  if (suspend && reason === "") throw new InvalidArgumentError({ field: "reason", description: "a reason is required" });
  return withTenant(db, { service: "identity", tenantId: id, signal }, async (trx) => {
    const current = await store.findTenant(trx, id, true);
    if (!current) throw new NotFoundError("tenant not found");
    checkEtag(opts.etag, current.row_version, "tenant");
    if ((current.status === "suspended") === suspend) return current;
    const updated = await store.setTenantSuspended(trx, id, suspend ? reason : null);
    await appendEvents(trx, [
      {
        tenantId: id,
        aggregateType: "tenant",
        aggregateId: id,
        aggregateVersion: BigInt(updated.row_version),
        eventType: suspend ? "identity.tenant.suspended" : "identity.tenant.resumed",
        payload: suspend ? { reason } : {},
        ...actor,
      },
    ]);
    return updated;
  });
}

/**
 * A page of all tenants, oldest first (platform admin; the handler checks). Keyset pagination on
 * (created_at, id) through the cross-tenant function `admin_list_tenants`; the page token carries
 * the last row's `created_at` to the microsecond (a DbTime) and its id, and is bound to `status`.
 */
export async function listTenants(
  db: Knex,
  q: { status: "active" | "suspended" | null; pageSize: number; pageToken: string },
  signal?: AbortSignal,
): Promise<{ tenants: TenantRow[]; nextPageToken: string }> {
  const params = { list: "tenants", status: q.status };
  const after = decodePageCursor(q.pageToken, params, { createdAt: CURSOR_TIMESTAMP, id: CURSOR_UUID });
  const limit = pageSizeOf(q.pageSize);
  const rows = await withServiceRole(db, "identity", (trx) => store.listAllTenants(trx, { status: q.status, after, limit: limit + 1 }), { signal });
  const { page, nextPageToken } = pageOf(rows, limit, params, (last) => ({ createdAt: last.created_at.toISOString(), id: last.id }));
  return { tenants: page, nextPageToken };
}
