import { randomUUID } from "node:crypto";
import { appendEvents, withTenant, type AuditEvent, type Knex } from "@promptcraft/db";
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  checkEtag,
  PermissionDeniedError,
  requireCallerRole,
  roleAtLeast,
  type Actor,
  type AuthContext,
  CURSOR_TEXT,
  CURSOR_TIMESTAMP,
  CURSOR_UUID,
  decodePageCursor,
  pageOf,
  pageSizeOf,
} from "@promptcraft/platform";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import * as store from "../store/oidc.js";
import { findUser } from "../store/users.js";
import { encryptPrivateKey } from "./key-encryption.js";
import { isAcceptableProviderUrl, type OidcClient } from "./oidc-client.js";
import { derivedUuid } from "./request-ids.js";

/**
 * A tenant's OIDC providers (admins manage them; the client secret is encrypted at rest and never
 * returned) and the identities linked to its users (the user themself or an admin).
 */

export type OidcProviderRow = store.OidcProviderRow;
export type LinkedIdentityRow = store.LinkedIdentityRow;
export type Caller = Pick<AuthContext, "tenantId" | "userId" | "role"> & { readonly signal?: AbortSignal };

/** Scopes requested besides `openid` when a provider is created without any. */
export const DEFAULT_SCOPES = ["email", "profile"];

/** Associated data of a provider's encrypted client secret: the ciphertext only decrypts for that row. */
export function clientSecretAad(providerId: string): string {
  return `oidc_provider:${providerId}`;
}

/** The caller's transaction settings, stopped with the caller's call (platform `callerOf` carries its signal). */
function scopeOf(caller: Caller) {
  return { service: "identity" as const, tenantId: caller.tenantId, userId: caller.userId ?? null, signal: caller.signal };
}

const providerNotFound = (id: string) => new NotFoundError(`OIDC provider ${id} not found`);

/** ALREADY_EXISTS for a second provider with the same issuer and client id; any other error as it is. */
function duplicateAsAlreadyExists(err: unknown): unknown {
  const e = err as { code?: unknown; constraint?: unknown } | null;
  if (e?.code === "23505" && e.constraint === "oidc_provider_issuer_client_key") {
    return new AlreadyExistsError("a provider with this issuer and client id exists in the tenant");
  }
  return err;
}

/** The configurable fields of a provider, as the rules see them (`clientSecret` in clear, "" for none). */
export interface ProviderInput {
  displayName: string;
  issuer: string;
  clientId: string;
  clientSecret: string;
  scopes: string[];
  allowedEmailDomains: string[];
  jitEnabled: boolean;
  jitRole: store.JitRole;
  enabled: boolean;
}

/** INVALID_ARGUMENT unless the issuer is an HTTPS URL (HTTP only on loopback hosts). */
function checkIssuer(issuer: string): void {
  if (!isAcceptableProviderUrl(issuer)) {
    throw new InvalidArgumentError({
      field: "oidc_provider.issuer_uri",
      description: "must be an https URL (http only for localhost), without credentials or fragment",
      reason: "oidc_provider.issuer_uri",
    });
  }
}

/** INVALID_ARGUMENT when a field that must have a value is blank (an update mask may name it with none). */
function checkNotBlank(value: string | undefined, field: string): void {
  if (value !== undefined && value.trim() === "") {
    throw new InvalidArgumentError({ field: `oidc_provider.${field}`, description: "must not be empty", reason: "string.min_len" });
  }
}

/** The stored form of the input's fields (those given only), with the secret encrypted for `providerId`. */
function storedFields(input: Partial<ProviderInput>, providerId: string, kek: Buffer): Partial<store.OidcProviderFields> {
  checkNotBlank(input.displayName, "display_name");
  checkNotBlank(input.clientId, "client_id");
  const out: Partial<store.OidcProviderFields> = {};
  if (input.displayName !== undefined) out.displayName = input.displayName.trim();
  if (input.issuer !== undefined) out.issuer = input.issuer;
  if (input.clientId !== undefined) out.clientId = input.clientId;
  if (input.clientSecret !== undefined) out.clientSecret = input.clientSecret === "" ? null : encryptPrivateKey(input.clientSecret, kek, clientSecretAad(providerId));
  if (input.scopes !== undefined) out.scopes = input.scopes.filter((s) => s !== "openid");
  if (input.allowedEmailDomains !== undefined) out.allowedEmailDomains = [...new Set(input.allowedEmailDomains.map((d) => d.toLowerCase()))];
  if (input.jitEnabled !== undefined) out.jitEnabled = input.jitEnabled;
  if (input.jitRole !== undefined) out.jitRole = input.jitRole;
  if (input.enabled !== undefined) out.enabled = input.enabled;
  return out;
}

/** The event of a provider change: the new settings, never the secret (only whether one is stored). */
function providerEvent(row: OidcProviderRow, eventType: string, actor: Actor, extra: Record<string, unknown> = {}): AuditEvent {
  return {
    tenantId: row.tenant_id,
    aggregateType: "oidc_provider",
    aggregateId: row.id,
    aggregateVersion: BigInt(row.row_version),
    eventType,
    payload: {
      display_name: row.display_name,
      issuer: row.issuer,
      client_id: row.client_id,
      has_client_secret: row.client_secret !== null,
      scopes: row.scopes,
      allowed_email_domains: row.allowed_email_domains,
      jit_provisioning_enabled: row.jit_enabled,
      jit_default_role: row.jit_role,
      enabled: row.enabled,
      ...extra,
    },
    ...actor,
  };
}

/**
 * Adds a provider after fetching and checking its discovery document. Idempotent with a request
 * id (the provider's id is derived from it); the same issuer and client id twice is ALREADY_EXISTS.
 */
export async function createProvider(db: Knex, oidc: OidcClient, kek: Buffer, caller: Caller, input: ProviderInput, requestId: string, actor: Actor): Promise<OidcProviderRow> {
  requireCallerRole(caller, "admin");
  checkIssuer(input.issuer);
  await oidc.discover(input.issuer);
  const id = requestId ? derivedUuid("oidc_provider", caller.tenantId, requestId) : randomUUID();
  const fields = storedFields({ ...input, scopes: input.scopes.length > 0 ? input.scopes : DEFAULT_SCOPES }, id, kek) as store.OidcProviderFields;
  try {
    return await withTenant(db, scopeOf(caller), async (trx) => {
      const inserted = await store.insertProvider(trx, caller.tenantId, id, fields);
      if (!inserted) {
        const existing = (await store.findProvider(trx, caller.tenantId, id))!;
        if (existing.issuer !== fields.issuer || existing.client_id !== fields.clientId) {
          throw new AlreadyExistsError("request_id was already used for a different request", { reason: ErrorReason.REQUEST_ID_REUSED });
        }
        return existing;
      }
      await appendEvents(trx, [providerEvent(inserted, "identity.oidc_provider.created", actor)]);
      return inserted;
    });
  } catch (err) {
    throw duplicateAsAlreadyExists(err);
  }
}

export async function getProvider(db: Knex, caller: Caller, id: string): Promise<OidcProviderRow> {
  requireCallerRole(caller, "admin");
  const row = await withTenant(db, scopeOf(caller), (trx) => store.findProvider(trx, caller.tenantId, id));
  if (!row) throw providerNotFound(id);
  return row;
}

/** A page of the tenant's providers by display name. */
export async function listProviders(db: Knex, caller: Caller, q: { pageSize: number; pageToken: string }): Promise<{ providers: OidcProviderRow[]; nextPageToken: string }> {
  requireCallerRole(caller, "admin");
  const size = pageSizeOf(q.pageSize);
  const params = { list: "oidc_providers", t: caller.tenantId };
  const after = decodePageCursor(q.pageToken, params, { name: CURSOR_TEXT, id: CURSOR_UUID });
  const rows = await withTenant(db, scopeOf(caller), (trx) => store.listProviders(trx, caller.tenantId, { enabledOnly: false, after, limit: size + 1 }));
  const { page, nextPageToken } = pageOf(rows, size, params, (last) => ({ name: last.sort_key, id: last.id }));
  return { providers: page, nextPageToken };
}

/** The enabled providers of a tenant for the login page, by display name (at most 100). */
export async function listLoginProviders(trx: Knex.Transaction, tenantId: string): Promise<{ oidcProviderId: string; displayName: string }[]> {
  const rows = await store.listProviders(trx, tenantId, { enabledOnly: true, limit: 100 });
  return rows.map((r) => ({ oidcProviderId: r.id, displayName: r.display_name }));
}

function sameFields(row: OidcProviderRow, changes: Partial<store.OidcProviderFields>): boolean {
  const current: store.OidcProviderFields = {
    displayName: row.display_name,
    issuer: row.issuer,
    clientId: row.client_id,
    clientSecret: row.client_secret,
    scopes: row.scopes,
    allowedEmailDomains: row.allowed_email_domains,
    jitEnabled: row.jit_enabled,
    jitRole: row.jit_role,
    enabled: row.enabled,
  };
  return (Object.keys(changes) as (keyof store.OidcProviderFields)[]).every((k) => JSON.stringify(current[k]) === JSON.stringify(changes[k]));
}

/**
 * Updates the masked fields. A new issuer is discovered before saving. A new client secret always
 * counts as a change (it is stored encrypted, so it is not compared); otherwise a change that
 * changes nothing writes nothing.
 */
export async function updateProvider(
  db: Knex,
  oidc: OidcClient,
  kek: Buffer,
  caller: Caller,
  id: string,
  etag: string,
  changes: Partial<ProviderInput>,
  actor: Actor,
): Promise<OidcProviderRow> {
  requireCallerRole(caller, "admin");
  if (changes.issuer !== undefined) checkIssuer(changes.issuer);
  const current = await getProvider(db, caller, id);
  if (changes.issuer !== undefined && changes.issuer !== current.issuer) await oidc.discover(changes.issuer);
  const fields = storedFields(changes, id, kek);
  try {
    return await withTenant(db, scopeOf(caller), async (trx) => {
      const row = await store.findProvider(trx, caller.tenantId, id, true);
      if (!row) throw providerNotFound(id);
      checkEtag(etag, row.row_version, "provider");
      if (sameFields(row, fields)) return row;
      const updated = await store.updateProvider(trx, caller.tenantId, id, fields);
      await appendEvents(trx, [providerEvent(updated, "identity.oidc_provider.updated", actor, { changed_fields: Object.keys(fields).sort() })]);
      return updated;
    });
  } catch (err) {
    throw duplicateAsAlreadyExists(err);
  }
}

/** Deletes a provider and the identities linked through it; users stay. */
export async function deleteProvider(db: Knex, caller: Caller, id: string, etag: string, actor: Actor): Promise<void> {
  requireCallerRole(caller, "admin");
  await withTenant(db, scopeOf(caller), async (trx) => {
    const row = await store.findProvider(trx, caller.tenantId, id, true);
    if (!row) throw providerNotFound(id);
    checkEtag(etag, row.row_version, "provider");
    const unlinked = await store.deleteProvider(trx, caller.tenantId, id);
    await appendEvents(trx, [providerEvent(row, "identity.oidc_provider.deleted", actor, { unlinked_identities: unlinked })]);
  });
}

/** The user whose identities the caller names (empty: themself); PERMISSION_DENIED for another user unless admin. */
function identityOwner(caller: Caller, userId: string): string {
  const target = userId ? userId.toLowerCase() : caller.userId;
  if (!target) throw new FailedPreconditionError("an API key has no linked identities: name a user_id");
  if (target !== caller.userId && !roleAtLeast(caller.role, "admin")) {
    throw new PermissionDeniedError("listing another user's identities needs the admin role or higher", {
      reason: ErrorReason.PERMISSION_INSUFFICIENT,
      metadata: { required_role: "admin" },
    });
  }
  return target;
}

/** A page of a user's linked identities, oldest first. */
export async function listLinkedIdentities(
  db: Knex,
  caller: Caller,
  q: { userId: string; pageSize: number; pageToken: string },
): Promise<{ identities: LinkedIdentityRow[]; nextPageToken: string }> {
  const userId = identityOwner(caller, q.userId);
  const size = pageSizeOf(q.pageSize);
  const params = { list: "linked_identities", t: caller.tenantId, userId };
  const after = decodePageCursor(q.pageToken, params, { createdAt: CURSOR_TIMESTAMP, id: CURSOR_UUID });
  const rows = await withTenant(db, scopeOf(caller), async (trx) => {
    const user = await findUser(trx, caller.tenantId, userId);
    if (!user || user.deleted_at) throw new NotFoundError(`user ${userId} not found`);
    return store.listIdentities(trx, caller.tenantId, userId, { after, limit: size + 1 });
  });
  const { page, nextPageToken } = pageOf(rows, size, params, (last) => ({ createdAt: last.created_at.toISOString(), id: last.id }));
  return { identities: page, nextPageToken };
}

/**
 * Unlinks an identity: the user themself, or an admin (an owner for an owner's identities; others
 * get NOT_FOUND, as for sessions). Refused (FAILED_PRECONDITION) when it would leave the user no way
 * to log in: no password and no other linked identity.
 */
export async function deleteLinkedIdentity(db: Knex, caller: Caller, id: string, actor: Actor): Promise<void> {
  await withTenant(db, scopeOf(caller), async (trx) => {
    const identity = await store.findIdentity(trx, caller.tenantId, id);
    const user = identity ? await findUser(trx, caller.tenantId, identity.user_id, true) : undefined;
    const self = user !== undefined && user.id === caller.userId;
    const manages = user !== undefined && roleAtLeast(caller.role, "admin") && (user.role !== "owner" || caller.role === "owner");
    if (!identity || !user || !(self || manages)) throw new NotFoundError(`linked identity ${id} not found`);
    if (!user.has_password && (await store.countIdentities(trx, caller.tenantId, user.id)) <= 1) {
      throw new FailedPreconditionError("this is the user's only way to log in (no password, no other linked identity)", {
        metadata: { user_id: user.id },
      });
    }
    await store.deleteIdentity(trx, caller.tenantId, id);
    await appendEvents(trx, [
      {
        tenantId: caller.tenantId,
        aggregateType: "linked_identity",
        aggregateId: id,
        eventType: "identity.linked_identity.deleted",
        payload: { user_id: user.id, provider_id: identity.provider_id, issuer: identity.issuer, subject: identity.subject },
        ...actor,
      },
    ]);
  });
}
