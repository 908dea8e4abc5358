import { appendEvents, canonicalJson, contentHash, tenantReads, withTenant, type AuditEvent, type Knex, type TenantReads, type TenantScope, type VersionFields } from "@promptcraft/db";
import {
  AlreadyExistsError,
  checkEtag,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  ResourceExhaustedError,
  CURSOR_TEXT,
  CURSOR_TIMESTAMP,
  CURSOR_UUID,
  decodePageCursor,
  pageOf,
  pageSizeOf,
  principalName,
  type Actor,
} from "@promptcraft/platform";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import { findEntityAccess, type EntityAccessRow } from "../store/access.js";
import * as store from "../store/entities.js";
import * as names from "../store/names.js";
import { findCurrentVersion, findVersionByRequestId, insertNextVersion } from "../store/versions.js";
import {
  entityNotFound,
  permissionOfRank,
  principalColumns,
  principalOf,
  requirePermission,
  requireTenantRole,
  requireUser,
  type Caller,
  type PermissionLevel,
} from "./access.js";
import { checkName, firstFreeName, isNameConflict, nameTaken, slugOf, type EntityRef } from "./names.js";

/**
 * Entities (assets) and their lifecycle: create (idempotent), read as of a version / label / time,
 * list, update (a new version; unchanged content writes nothing), soft delete, undelete, purge.
 * Every change takes the entity's row lock first, checks the etag under it, and appends its audit
 * event in the same transaction.
 */

export type EntityRow = store.EntityVersionRow;

/** Service settings the rules need (config.ts). */
export interface EntitySettings {
  /** How long a soft-deleted entity stays restorable before it may be purged. */
  softDeleteRetentionMs: number;
}

/** An entity as the caller reads it: the row and their effective permission. */
export interface EntityView {
  row: EntityRow;
  permission: PermissionLevel;
}

/** Content and metadata together may not exceed this, serialized (the contract's 1 MiB). */
export const MAX_CONTENT_BYTES = 1024 * 1024;

/** The caller's transaction settings; the transaction stops when the caller's call is cancelled or its deadline passes. */
export function scopeOf(caller: Caller): TenantScope {
  return { service: "content", tenantId: caller.tenantId, userId: caller.userId ?? null, signal: caller.signal };
}

/**
 * The caller's reads that run alone: each one read-only round trip (no BEGIN/COMMIT), stopped like
 * the caller's transactions. For calls that only read; writes and reads that must see one snapshot
 * with a write use withTenant.
 */
export function readsOf(db: Knex, caller: Caller): TenantReads {
  return tenantReads(db, scopeOf(caller));
}

function viewOf(row: EntityRow): EntityView {
  return { row, permission: permissionOfRank(row.permission) };
}

/** The audit event of a change of `entity` (aggregate version = its etag after the change). */
export function entityEvent(tenantId: string, entityId: string, rowVersion: string, eventType: string, payload: Record<string, unknown>, actor: Actor): AuditEvent {
  return { tenantId, aggregateType: "entity", aggregateId: entityId, aggregateVersion: BigInt(rowVersion), eventType, payload, ...actor };
}

/** INVALID_ARGUMENT (CONTENT_TOO_LARGE) when content and metadata exceed 1 MiB serialized. */
export function checkContentSize(fields: Pick<VersionFields, "content" | "metadata">, field: string): void {
  const bytes = Buffer.byteLength(canonicalJson(fields.content)) + Buffer.byteLength(canonicalJson(fields.metadata));
  if (bytes > MAX_CONTENT_BYTES) {
    throw new InvalidArgumentError(
      { field, description: `content and metadata together are ${bytes} bytes serialized; at most ${MAX_CONTENT_BYTES} are allowed` },
      { reason: ErrorReason.CONTENT_TOO_LARGE, metadata: { limit_bytes: String(MAX_CONTENT_BYTES), size_bytes: String(bytes) } },
    );
  }
}

/** FAILED_PRECONDITION (RESOURCE_DELETED) for a soft-deleted entity: undelete it first. */
export function requireLive(entity: Pick<EntityAccessRow, "deleted_at" | "purge_time">): void {
  if (entity.deleted_at) {
    throw new FailedPreconditionError("the entity is deleted; undelete it first", {
      reason: ErrorReason.RESOURCE_DELETED,
      metadata: { delete_time: entity.deleted_at.toISOString(), purge_time: entity.purge_time?.toISOString() ?? "" },
    });
  }
}

/**
 * Locks the entity, checks that the caller has `needed` on it (NOT_FOUND without view) and the
 * etag, then runs `change` in the same transaction.
 */
export async function changeEntity<T>(
  db: Knex,
  caller: Caller,
  entityId: string,
  needed: Exclude<PermissionLevel, "none">,
  what: string,
  change: (trx: Knex.Transaction, entity: EntityAccessRow) => Promise<T>,
): Promise<T> {
  return withTenant(db, scopeOf(caller), async (trx) => {
    const entity = await findEntityAccess(trx, caller, entityId, true);
    requirePermission(entity ? permissionOfRank(entity.permission) : "none", needed, what);
    return change(trx, entity!);
  });
}

/** Reads the entity as of its current version inside `trx` (after a change). */
export async function readCurrent(trx: Knex.Transaction, caller: Caller, entityId: string): Promise<EntityView> {
  const row = await store.findEntityVersion(trx, caller, entityId, { kind: "current" }, true);
  return viewOf(row as EntityRow);
}

/**
 * The answer to a retry (AIP-155): the entity as of the version an earlier Update or Rollback
 * with `requestId` wrote, or undefined when there was none (a call that changed nothing leaves
 * nothing to remember: its retry simply runs again).
 */
export async function retriedWrite(trx: Knex.Transaction, caller: Caller, entityId: string, requestId: string): Promise<EntityView | undefined> {
  if (requestId === "") return undefined;
  const version = await findVersionByRequestId(trx, caller.tenantId, entityId, requestId);
  if (version === undefined) return undefined;
  return viewOf((await store.findEntityVersion(trx, caller, entityId, { kind: "version", version }, true)) as EntityRow);
}

export interface NewEntity {
  type: store.EntityType;
  /** The name; empty: derived from the title (`slugOf`, made unique with `-2`, `-3`…). */
  name: string;
  fields: VersionFields;
  commitMessage: string;
  requestId: string;
}

/**
 * Creates an entity with version 1 owned (and authored) by the caller: their user, or their API key.
 * Needs the editor role. Idempotent with a request id: a retry by the same caller returns the
 * entity the first call created (its current state); the same request id with another type, other
 * fields, another caller or another name (than the one it was created with; none given: any) is
 * ALREADY_EXISTS (REQUEST_ID_REUSED). The tenant's `max_entities`
 * quota counts live entities. A name another live entity holds is ALREADY_EXISTS naming
 * `entity.name`; a derived name takes the first free candidate (creations of a tenant are
 * serialised by the quota lock, so only a concurrent rename can take it meanwhile).
 */
export async function createEntity(db: Knex, caller: Caller, input: NewEntity, actor: Actor): Promise<EntityView> {
  requireTenantRole(caller, "editor", "creating an entity");
  const owner = principalOf(caller);
  const [ownerUser, ownerKey] = principalColumns(owner);
  checkContentSize(input.fields, "entity.content");
  if (input.name !== "") checkName(input.name, "entity.name");
  const hash = contentHash(input.fields);
  return withNameConflicts(() => withTenant(db, scopeOf(caller), async (trx) => {
    const retried = async (id: string): Promise<EntityView> => {
      const first = await store.findEntityVersion(trx, caller, id, { kind: "version", version: 1 }, false);
      const sameName = input.name === "" || (await names.nameAtCreation(trx, caller.tenantId, id)) === input.name;
      if (!first || first.entity_type !== input.type || first.content_hash !== hash || first.owner_id !== ownerUser || first.owner_api_key_id !== ownerKey || !sameName) {
        throw new AlreadyExistsError("request_id was already used for a different request", { reason: ErrorReason.REQUEST_ID_REUSED });
      }
      return readCurrent(trx, caller, id);
    };
    const requestId = input.requestId || null;
    const limit = await store.lockEntityQuota(trx, caller.tenantId);
    if (requestId) {
      const existing = await store.findEntityIdByRequestId(trx, caller.tenantId, requestId);
      if (existing) return retried(existing);
    }
    if (limit !== undefined && (await store.countLiveEntities(trx, caller.tenantId)) >= limit) {
      throw new ResourceExhaustedError(`the tenant has reached its limit of ${limit} entities`, {
        reason: ErrorReason.QUOTA_EXCEEDED,
        metadata: { metric: "max_entities", limit: String(limit) },
      });
    }
    let name = input.name;
    if (name === "") {
      const base = slugOf(input.fields.title);
      name = firstFreeName(base, await names.namesLike(trx, caller.tenantId, base));
    } else if (await names.nameHolder(trx, caller.tenantId, name)) {
      throw nameTaken(name, "entity.name");
    }
    const id = await store.insertEntity(trx, {
      tenantId: caller.tenantId,
      type: input.type,
      name,
      owner,
      requestId,
      fields: input.fields,
      hash,
      commitMessage: input.commitMessage || "Create",
    });
    // The quota lock serialises creations of the tenant, so a retry racing its first call waits and
    // then finds it above; `undefined` cannot happen while the lock is held.
    const created = await readCurrent(trx, caller, id!);
    await appendEvents(trx, [
      entityEvent(caller.tenantId, id!, created.row.row_version, "content.entity.created", { type: input.type, name, version: 1, title: input.fields.title, content_hash: hash }, actor),
    ]);
    return created;
  }), input.name, "entity.name");
}

/**
 * Runs `work` (a whole transaction), turning a name taken concurrently (the unique index or the
 * name history's exclusion, after the checks passed) into ALREADY_EXISTS naming `field`.
 */
async function withNameConflicts<T>(work: () => Promise<T>, name: string, field: string): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (isNameConflict(err)) throw nameTaken(name, field);
    throw err;
  }
}

/**
 * An entity (deleted ones included) as of the selected version, for a caller with view. NOT_FOUND
 * names what is missing in its metadata: the entity, the version, the label, or any version at
 * that time. By name: the live entity holding the name, or with a time (`as_of_time`, alone or
 * with a label) the entity that held it then — a deleted entity holds no name, so it is read by id.
 */
export async function getEntity(db: Knex, caller: Caller, ref: EntityRef, selector: store.VersionSelector, full: boolean): Promise<EntityView> {
  const time = selector.kind === "as_of" || selector.kind === "label" ? selector.time : undefined;
  const reads = readsOf(db, caller);
  const row = await store.findEntityVersion(reads, caller, names.entityIdOf(reads, caller.tenantId, ref, time), selector, full);
  if (!row || row.permission < 1) throw "name" in ref ? nameNotFound(ref.name, time) : entityNotFound();
  if (row.version === null) throw selectorNotFound(selector);
  return viewOf(row as EntityRow);
}

/** NOT_FOUND for a name no entity the caller may see holds (now, or at `time`); the same whether it exists or is hidden. */
function nameNotFound(name: string, time: Date | undefined): NotFoundError {
  return new NotFoundError(time ? `no entity was named ${name} at ${time.toISOString()}` : `no entity is named ${name}`, {
    metadata: { resource_type: "entity", name, ...(time ? { as_of_time: time.toISOString() } : {}) },
  });
}

function selectorNotFound(selector: store.VersionSelector): NotFoundError {
  switch (selector.kind) {
    case "version":
      return new NotFoundError(`the entity has no version ${selector.version}`, { metadata: { resource_type: "entity_version", version: String(selector.version) } });
    case "label":
      return new NotFoundError(
        selector.time ? `label ${selector.label} did not point to any version at ${selector.time.toISOString()}` : `the entity has no label ${selector.label}`,
        { metadata: { resource_type: "label", label: selector.label, ...(selector.time ? { as_of_time: selector.time.toISOString() } : {}) } },
      );
    case "as_of":
      return new NotFoundError(`the entity did not exist at ${selector.time.toISOString()}`, {
        metadata: { resource_type: "entity_version", as_of_time: selector.time.toISOString() },
      });
    case "current":
      return entityNotFound();
  }
}

/** The current versions of the entities the caller may see, in request order; the rest are missing. */
export async function batchGetEntities(
  db: Knex,
  caller: Caller,
  ids: string[],
  options: { full: boolean; showDeleted: boolean },
): Promise<{ found: EntityView[]; missing: string[] }> {
  const rows = await store.findVisibleEntities(readsOf(db, caller), caller, ids, options);
  const byId = new Map(rows.map((r) => [r.id, r]));
  const found: EntityView[] = [];
  const missing: string[] = [];
  for (const id of ids) {
    const row = byId.get(id.toLowerCase());
    if (row) found.push(viewOf(row));
    else missing.push(id);
  }
  return { found, missing };
}

export interface EntityQuery {
  pageSize: number;
  pageToken: string;
  filter: store.EntityFilter;
  order: store.EntityOrder;
  full: boolean;
}

/** A page of the current versions the caller may see. The token is bound to the caller and every filter. */
export async function listEntities(db: Knex, caller: Caller, q: EntityQuery): Promise<{ entities: EntityView[]; nextPageToken: string }> {
  const f = q.filter;
  if (f.favoritesOnly) requireUser(caller, "favorites");
  const params = {
    t: caller.tenantId,
    u: principalName(...principalColumns(principalOf(caller))),
    r: caller.role,
    ty: [...f.types].sort(),
    ta: [...new Set(f.tagsAny)].sort(),
    tl: [...new Set(f.tagsAll)].sort(),
    s: [...f.statuses].sort(),
    o: f.owner ? principalName(...principalColumns(f.owner)) : "",
    v: f.visibility ?? "",
    fav: f.favoritesOnly,
    tp: f.titlePrefix.toLowerCase(),
    n: f.name,
    np: f.namePrefix,
    d: f.showDeleted,
    ob: q.order,
    full: q.full,
  };
  const cursor = decodePageCursor(q.pageToken, params, { key: q.order.key === "title" || q.order.key === "name" ? CURSOR_TEXT : CURSOR_TIMESTAMP, id: CURSOR_UUID });
  const limit = pageSizeOf(q.pageSize);
  const rows = await store.listEntities(readsOf(db, caller), caller, f, q.order, { after: cursor, limit: limit + 1, full: q.full });
  const { page, nextPageToken } = pageOf(rows, limit, params, (last) => ({ key: last.sort_key, id: last.id }));
  return { entities: page.map(viewOf), nextPageToken };
}

/** The changed fields of an update, as store values; only the fields in the mask. */
export type FieldChanges = Partial<VersionFields>;

/**
 * Writes a new version with `changes` applied to the current one, unless nothing changes (same
 * content hash): then nothing is written, no event appended, and the current entity returned.
 * Needs edit; a deleted entity is FAILED_PRECONDITION; a stale etag ABORTED. A retry with the
 * request id of a call that wrote a version returns that version (see `retriedWrite`).
 * With `name` (the update mask names it), the entity is renamed first: not versioned, but recorded
 * in the name history and the event log (`content.entity.renamed`); a name another live entity
 * holds is ALREADY_EXISTS naming `entity.name`.
 */
export async function updateEntity(
  db: Knex,
  caller: Caller,
  entityId: string,
  etag: string,
  apply: (current: VersionFields) => VersionFields,
  commit: { message: string; requestId: string; name?: string },
  actor: Actor,
): Promise<EntityView> {
  const author = principalOf(caller);
  const commitMessage = commit.message || "Update";
  if (commit.name !== undefined) checkName(commit.name, "entity.name");
  return withNameConflicts(() => changeEntity(db, caller, entityId, "edit", "changing the entity", async (trx, entity) => {
    const retried = await retriedWrite(trx, caller, entityId, commit.requestId);
    if (retried) return retried;
    requireLive(entity);
    checkEtag(etag, entity.row_version, "entity");
    if (commit.name !== undefined && commit.name !== entity.name) await rename(trx, caller, entity, commit.name, "entity.name", true, actor);
    const current = await findCurrentVersion(trx, caller.tenantId, entityId);
    const next = apply(current);
    checkContentSize(next, "entity.content");
    const hash = contentHash(next);
    if (hash !== current.content_hash) {
      const written = await insertNextVersion(trx, {
        tenantId: caller.tenantId,
        entityId,
        fields: next,
        hash,
        commitMessage,
        author,
        rolledBackFrom: null,
        requestId: commit.requestId || null,
      });
      await appendEvents(trx, [
        entityEvent(caller.tenantId, entityId, written.row_version, "content.entity.updated", {
          version: written.version,
          previous_version: current.version,
          changed_fields: changedFields(current, next),
          commit_message: commitMessage,
          content_hash: hash,
        }, actor),
      ]);
    }
    return readCurrent(trx, caller, entityId);
  }), commit.name ?? "", "entity.name");
}

/**
 * Renames a locked entity to `name` (ALREADY_EXISTS naming `field` when another live entity holds
 * it) and appends `content.entity.renamed`. `live`: whether the entity holds its name now (not
 * while deleted: then only `entity.name` changes, for the undelete that follows).
 */
async function rename(trx: Knex.Transaction, caller: Caller, entity: EntityAccessRow, name: string, field: string, live: boolean, actor: Actor): Promise<void> {
  const holder = await names.nameHolder(trx, caller.tenantId, name);
  if (holder !== undefined && holder !== entity.id) throw nameTaken(name, field);
  const { row_version } = await names.renameEntity(trx, { tenantId: caller.tenantId, entityId: entity.id, name, by: principalOf(caller), live });
  await appendEvents(trx, [entityEvent(caller.tenantId, entity.id, row_version, "content.entity.renamed", { name, previous_name: entity.name }, actor)]);
}

const VERSIONED_FIELDS = ["title", "description", "status", "visibility", "content", "tags", "metadata"] as const;

/** Names of the versioned fields whose values differ. */
export function changedFields(a: VersionFields, b: VersionFields): string[] {
  return VERSIONED_FIELDS.filter((f) => canonicalJson(a[f]) !== canonicalJson(b[f]));
}

/** Soft-deletes an entity (admin on it): delete_time now, purge_time now + retention. */
export async function deleteEntity(
  db: Knex,
  caller: Caller,
  entityId: string,
  etag: string,
  settings: EntitySettings,
  actor: Actor,
  findDependents?: FindDependents,
): Promise<EntityView> {
  if (findDependents) await refuseWithDependents(db, caller, entityId, findDependents);
  return changeEntity(db, caller, entityId, "admin", "deleting the entity", async (trx, entity) => {
    requireLive(entity);
    checkEtag(etag, entity.row_version, "entity");
    await store.setDeleted(trx, caller.tenantId, entityId, { deletedBy: caller.userId ?? null, purgeAfterMs: settings.softDeleteRetentionMs });
    await names.closeEntityName(trx, caller.tenantId, entityId);
    const deleted = await readCurrent(trx, caller, entityId);
    await appendEvents(trx, [
      entityEvent(caller.tenantId, entityId, deleted.row.row_version, "content.entity.deleted", { purge_time: deleted.row.purge_time!.toISOString() }, actor),
    ]);
    return deleted;
  });
}

/** Entities that depend on one (graph's incoming depends_on / part_of), as many as one look finds. */
export type FindDependents = (entityId: string) => Promise<{ entityIds: string[]; more: boolean }>;

/** How many dependents an ENTITY_HAS_DEPENDENTS error names. */
const DEPENDENTS_LISTED = 5;

/**
 * FAILED_PRECONDITION (ENTITY_HAS_DEPENDENTS) when others depend on the entity. Only a caller who may
 * delete it is told (NOT_FOUND / PERMISSION_DENIED first, as the delete itself would answer); the
 * error names only dependents the caller may view. Asked before the delete's transaction, so no
 * transaction waits on the graph service; a dependency added in between is not seen (as with any
 * check-then-act across services) — graph refuses new relationships to deleted entities.
 */
async function refuseWithDependents(db: Knex, caller: Caller, entityId: string, findDependents: FindDependents): Promise<void> {
  const reads = readsOf(db, caller);
  const entity = await findEntityAccess(reads, caller, entityId);
  requirePermission(entity ? permissionOfRank(entity.permission) : "none", "admin", "deleting the entity");
  if (entity!.deleted_at) return; // the delete answers RESOURCE_DELETED
  const { entityIds, more } = await findDependents(entityId);
  if (entityIds.length === 0) return;
  const listed: string[] = [];
  for (const id of entityIds) {
    if (listed.length >= DEPENDENTS_LISTED) break;
    const dependent = await findEntityAccess(reads, caller, id);
    if (dependent && dependent.permission > 0) listed.push(`${dependent.name}:${id}`);
  }
  const count = `${entityIds.length}${more ? "+" : ""}`;
  throw new FailedPreconditionError(`${count} entities depend on this one${listed.length > 0 ? ` (${listed.join(", ")})` : ""}: delete with force to delete anyway`, {
    reason: ErrorReason.ENTITY_HAS_DEPENDENTS,
    metadata: { dependents: listed.join(","), dependent_count: count },
  });
}

/**
 * Restores a soft-deleted entity (admin on it) under its name, or under `name` when given (a
 * rename, recorded as such). When another live entity took its name meanwhile, ALREADY_EXISTS
 * naming `name`: undelete with a new name.
 */
export async function undeleteEntity(db: Knex, caller: Caller, entityId: string, etag: string, name: string | undefined, actor: Actor): Promise<EntityView> {
  if (name !== undefined) checkName(name, "name");
  return withNameConflicts(() => changeEntity(db, caller, entityId, "admin", "restoring the entity", async (trx, entity) => {
    if (!entity.deleted_at) throw new FailedPreconditionError("the entity is not deleted", { reason: ErrorReason.RESOURCE_NOT_DELETED });
    checkEtag(etag, entity.row_version, "entity");
    if (name !== undefined && name !== entity.name) {
      await rename(trx, caller, entity, name, "name", false, actor);
    } else if ((await names.nameHolder(trx, caller.tenantId, entity.name)) !== undefined) {
      throw new AlreadyExistsError(`another entity took the name ${entity.name} meanwhile; undelete with a new name`, {
        metadata: { field: "name", name: entity.name, resource_type: "entity" },
      });
    }
    await store.setDeleted(trx, caller.tenantId, entityId, null);
    await names.openEntityName(trx, { tenantId: caller.tenantId, entityId, by: principalOf(caller) });
    const restored = await readCurrent(trx, caller, entityId);
    await appendEvents(trx, [entityEvent(caller.tenantId, entityId, restored.row.row_version, "content.entity.undeleted", { name: restored.row.name }, actor)]);
    return restored;
  }), name ?? "", "name");
}

/** A page of an entity's name periods, newest first (view on the entity; deleted entities included). */
export async function listEntityNameHistory(
  db: Knex,
  caller: Caller,
  q: { entityId: string; pageSize: number; pageToken: string },
): Promise<{ names: names.EntityNameRow[]; nextPageToken: string }> {
  const params = { t: caller.tenantId, e: q.entityId };
  const cursor = decodePageCursor(q.pageToken, params, { before: CURSOR_TIMESTAMP });
  const limit = pageSizeOf(q.pageSize);
  return withTenant(db, scopeOf(caller), async (trx) => {
    const entity = await findEntityAccess(trx, caller, q.entityId);
    requirePermission(entity ? permissionOfRank(entity.permission) : "none", "view", "reading the name history");
    const rows = await names.listEntityNames(trx, caller.tenantId, q.entityId, { before: cursor?.before, limit: limit + 1 });
    const { page, nextPageToken } = pageOf(rows, limit, params, (last) => ({ before: last.sort_key }));
    return { names: page, nextPageToken };
  });
}

/**
 * Deletes a soft-deleted entity for good with its versions, labels, shares and favorites. Tenant
 * owners and admins only; after purge_time, or earlier with `force`. The event log keeps the record.
 */
export async function purgeEntity(db: Knex, caller: Caller, entityId: string, force: boolean, etag: string, actor: Actor): Promise<void> {
  await changeEntity(db, caller, entityId, "view", "purging the entity", async (trx, entity) => {
    requireTenantRole(caller, "admin", "purging an entity");
    if (!entity.deleted_at) {
      throw new FailedPreconditionError("only a deleted entity can be purged; delete it first", { reason: ErrorReason.RESOURCE_NOT_DELETED });
    }
    checkEtag(etag, entity.row_version, "entity");
    if (!force && entity.purge_time && entity.purge_time.getTime() > Date.now()) {
      throw new FailedPreconditionError(`the entity may be purged from ${entity.purge_time.toISOString()}, or earlier with force`, {
        reason: ErrorReason.PURGE_NOT_ALLOWED_YET,
        metadata: { purge_time: entity.purge_time.toISOString() },
      });
    }
    await store.purgeEntity(trx, caller.tenantId, entityId);
    await appendEvents(trx, [
      entityEvent(caller.tenantId, entityId, entity.row_version, "content.entity.purged", { type: entity.entity_type, versions: entity.current_version, forced: force }, actor),
    ]);
  });
}
