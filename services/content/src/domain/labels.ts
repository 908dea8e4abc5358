import { appendEvents, withTenant, type Knex } from "@promptcraft/db";
import {
  AbortedError,
  AlreadyExistsError,
  CURSOR_INTEGER,
  CURSOR_TEXT,
  decodePageCursor,
  NotFoundError,
  pageOf,
  pageSizeOf,
  PermissionDeniedError,
  roleAtLeast,
  type Actor,
} from "@promptcraft/platform";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import type { EntityAccessRow } from "../store/access.js";
import * as store from "../store/labels.js";
import { permissionOfRank, principalOf, requirePermission, type Caller } from "./access.js";
import { changeEntity, entityEvent, requireLive, scopeOf } from "./entities.js";
import { entityFor } from "./shares.js";

/**
 * Labels (brief §4.4): named, movable, temporal pointers to versions. `latest` is implicit (the
 * current version) and never stored. Setting, moving or removing a protected label (tenant setting
 * `protected_labels`) needs the tenant role admin or owner; other labels need PERMISSION_EDIT on the
 * entity. Every change locks the entity row (so concurrent changes of one entity's labels apply one
 * after the other with a gap-free, non-overlapping history), bumps the entity's etag, records the
 * change in the label history and appends its audit event, all in one transaction.
 */

export type LabelRow = store.LabelRow;
export type LabelEventRow = store.LabelEventRow;

const DEFAULT_LABEL_PAGE_SIZE = 100;

function labelProtected(label: string): PermissionDeniedError {
  return new PermissionDeniedError(`label ${label} is protected: it needs the admin role or higher`, {
    reason: ErrorReason.LABEL_PROTECTED,
    metadata: { label, required_role: "admin" },
  });
}

/** PERMISSION_DENIED unless the caller may change `label` on this entity. */
function requireLabelChange(caller: Caller, entity: EntityAccessRow, label: string, isProtected: boolean): void {
  if (isProtected) {
    if (!roleAtLeast(caller.role, "admin")) throw labelProtected(label);
    return;
  }
  requirePermission(permissionOfRank(entity.permission), "edit", "changing a label");
}

function labelMoved(label: string, expected: number, current: number | undefined): AbortedError {
  return new AbortedError(`label ${label} does not point to version ${expected}`, {
    reason: ErrorReason.ETAG_MISMATCH,
    metadata: { label, current_version: String(current ?? 0) },
  });
}

export interface RemoveLabelInput {
  entityId: string;
  label: string;
  /** The version the label must point to now (SetLabel: 0 = it must not exist). */
  expectedVersion: number | undefined;
  reason: string;
}

export interface SetLabelInput extends RemoveLabelInput {
  version: number;
  /** AIP-155 request id (empty = none). */
  requestId: string;
}

/**
 * Runs a change of `label` on the locked entity once the caller may make it, with whether the
 * label is protected and where it points now.
 */
function changeLabel<T>(
  db: Knex,
  caller: Caller,
  input: RemoveLabelInput,
  change: (trx: Knex.Transaction, entity: EntityAccessRow, isProtected: boolean, current: LabelRow | undefined) => Promise<T>,
): Promise<T> {
  return changeEntity(db, caller, input.entityId, "view", "changing a label", async (trx, entity) => {
    const isProtected = await store.isProtectedLabel(trx, input.label);
    requireLabelChange(caller, entity, input.label, isProtected);
    return change(trx, entity, isProtected, await store.currentLabel(trx, caller.tenantId, input.entityId, input.label));
  });
}

/** Points a label at a version. Setting it to the version it already points to changes nothing. */
export async function setLabel(db: Knex, caller: Caller, input: SetLabelInput, actor: Actor): Promise<LabelRow> {
  return changeLabel(db, caller, input, async (trx, entity, isProtected, current) => {
    if (input.requestId !== "") {
      const earlier = await store.labelEventByIdempotencyKey(trx, caller.tenantId, input.entityId, input.requestId);
      if (earlier) {
        if (earlier.label !== input.label || earlier.to_version !== input.version) {
          throw new AlreadyExistsError("request_id was already used for a different request", { reason: ErrorReason.REQUEST_ID_REUSED });
        }
        // The retry of a call that succeeded gets that call's answer, whatever happened since.
        const [movedBy, movedByKey] = earlier.actor_type === "api_key" ? [null, earlier.actor_id] : [earlier.actor_id, null];
        return {
          label: earlier.label,
          version: input.version,
          protected: isProtected,
          moved_by: movedBy,
          moved_by_api_key_id: movedByKey,
          valid_from: earlier.occurred_at,
          implicit: false,
        };
      }
    }
    requireLive(entity);
    if (!(await store.versionExists(trx, caller.tenantId, input.entityId, input.version))) {
      throw new NotFoundError(`the entity has no version ${input.version}`, { metadata: { resource_type: "entity_version", version: String(input.version) } });
    }
    if (input.expectedVersion !== undefined && (current?.version ?? 0) !== input.expectedVersion) {
      throw labelMoved(input.label, input.expectedVersion, current?.version);
    }
    if (current && current.version === input.version) return { ...current, protected: isProtected };

    const moved = await store.moveLabel(trx, {
      tenantId: caller.tenantId,
      entityId: input.entityId,
      label: input.label,
      version: input.version,
      protected: isProtected,
      movedBy: principalOf(caller),
    });
    await recordChange(trx, caller, actor, {
      entityId: input.entityId,
      label: input.label,
      fromVersion: current?.version ?? null,
      toVersion: input.version,
      protected: isProtected,
      reason: input.reason,
      idempotencyKey: input.requestId || null,
      at: moved.valid_from,
    });
    return moved;
  });
}

/** Removes a label; removing a label that points nowhere succeeds and changes nothing. */
export async function removeLabel(db: Knex, caller: Caller, input: RemoveLabelInput, actor: Actor): Promise<void> {
  await changeLabel(db, caller, input, async (trx, _entity, isProtected, current) => {
    if (input.expectedVersion !== undefined && current?.version !== input.expectedVersion) {
      throw labelMoved(input.label, input.expectedVersion, current?.version);
    }
    if (!current) return;
    const at = (await store.closeLabel(trx, caller.tenantId, input.entityId, input.label))!;
    await recordChange(trx, caller, actor, {
      entityId: input.entityId,
      label: input.label,
      fromVersion: current.version,
      toVersion: null,
      protected: isProtected,
      reason: input.reason,
      idempotencyKey: null,
      at,
    });
  });
}

/** The label history row, the etag bump and the audit event of one label change. */
async function recordChange(
  trx: Knex.Transaction,
  caller: Caller,
  actor: Actor,
  c: { entityId: string; label: string; fromVersion: number | null; toVersion: number | null; protected: boolean; reason: string; idempotencyKey: string | null; at: Date },
): Promise<void> {
  const eventType = c.toVersion === null ? "removed" : c.fromVersion === null ? "set" : "moved";
  await store.insertLabelEvent(trx, {
    tenantId: caller.tenantId,
    entityId: c.entityId,
    label: c.label,
    eventType,
    fromVersion: c.fromVersion,
    toVersion: c.toVersion,
    protected: c.protected,
    actorType: actor.actorType,
    actorId: actor.actorId,
    reason: c.reason,
    requestId: actor.requestId,
    idempotencyKey: c.idempotencyKey,
    occurredAt: c.at,
  });
  const rowVersion = await store.bumpRowVersion(trx, caller.tenantId, c.entityId);
  await appendEvents(trx, [
    entityEvent(
      caller.tenantId,
      c.entityId,
      rowVersion,
      c.toVersion === null ? "content.label.removed" : "content.label.moved",
      { label: c.label, from_version: c.fromVersion, to_version: c.toVersion, protected: c.protected, reason: c.reason },
      actor,
    ),
  ]);
}

/** A page of the entity's labels by name, now or as of a past time, `latest` included. Needs view. */
export async function listLabels(
  db: Knex,
  caller: Caller,
  q: { entityId: string; asOf: Date | undefined; pageSize: number; pageToken: string },
): Promise<{ labels: LabelRow[]; nextPageToken: string }> {
  const params = { t: caller.tenantId, e: q.entityId, a: q.asOf?.toISOString() ?? null };
  const cursor = decodePageCursor(q.pageToken, params, { label: CURSOR_TEXT });
  const limit = pageSizeOf(q.pageSize, DEFAULT_LABEL_PAGE_SIZE);
  return withTenant(db, scopeOf(caller), async (trx) => {
    await entityFor(trx, caller, q.entityId, "view", "reading labels");
    const rows = await store.listLabels(trx, caller.tenantId, q.entityId, { asOf: q.asOf ?? null, after: cursor?.label ?? null, limit: limit + 1 });
    const { page, nextPageToken } = pageOf(rows, limit, params, (last) => ({ label: last.label }));
    return { labels: page, nextPageToken };
  });
}

/** A page of the entity's label history (all labels or one), newest first. Needs view. */
export async function listLabelHistory(
  db: Knex,
  caller: Caller,
  q: { entityId: string; label: string; pageSize: number; pageToken: string },
): Promise<{ events: LabelEventRow[]; nextPageToken: string }> {
  const params = { t: caller.tenantId, e: q.entityId, l: q.label };
  const cursor = decodePageCursor(q.pageToken, params, { id: CURSOR_INTEGER });
  const limit = pageSizeOf(q.pageSize);
  return withTenant(db, scopeOf(caller), async (trx) => {
    await entityFor(trx, caller, q.entityId, "view", "reading labels");
    const rows = await store.listLabelEvents(trx, caller.tenantId, q.entityId, { label: q.label || null, beforeId: cursor?.id ?? null, limit: limit + 1 });
    const { page, nextPageToken } = pageOf(rows, limit, params, (last) => ({ id: last.id }));
    return { events: page, nextPageToken };
  });
}
