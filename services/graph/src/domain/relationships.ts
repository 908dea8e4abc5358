import { appendEvents, canonicalJson, tenantReads, withTenant, type AuditEvent, type Knex, type TenantReads, type TenantScope } from "@promptcraft/db";
import {
  AlreadyExistsError,
  apiKeyIdOf,
  checkEtag,
  CURSOR_TIMESTAMP,
  CURSOR_UUID,
  decodePageCursor,
  FailedPreconditionError,
  InvalidArgumentError,
  pageOf,
  pageSizeOf,
  ResourceExhaustedError,
  type Actor,
} from "@promptcraft/platform";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import * as store from "../store/relationships.js";
import { EDIT, editDenied, entityNotFound, relationshipNotFound, VIEW, type Caller } from "./access.js";

/**
 * Relationships (issue 12.1): create (idempotent), get, list, update (field mask, etag), delete
 * (hard; history and the event log keep it). Every change locks first, checks access and the etag
 * under the lock, writes the relationship and its revision, and appends its event, in one
 * transaction.
 */

export type RelationshipRow = store.RelationshipRow;
export type RelationshipType = store.RelationshipType;

/** The types that may not form a cycle, together: a cycle mixing them counts. */
export const ACYCLIC_TYPES: readonly RelationshipType[] = ["depends_on", "part_of"];
/** Longest chain of acyclic edges allowed, and the deepest any traversal goes (the contract's 10). */
export const MAX_DEPTH = 10;
/** Most relationships one entity may have going out (all types). */
export const MAX_FAN_OUT = 1000;
/** Largest metadata, serialized. */
export const MAX_METADATA_BYTES = 64 * 1024;

/** The caller's transaction settings; stopped with the caller's call. */
export function scopeOf(caller: Caller): TenantScope {
  return { service: "graph", tenantId: caller.tenantId, userId: caller.userId ?? null, signal: caller.signal };
}

/** The caller's reads that run alone, each one read-only round trip. */
export function readsOf(db: Knex, caller: Caller): TenantReads {
  return tenantReads(db, scopeOf(caller));
}

function relationshipEvent(row: RelationshipRow, eventType: string, actor: Actor, payload: Record<string, unknown> = {}): AuditEvent {
  return {
    tenantId: row.tenant_id,
    aggregateType: "relationship",
    aggregateId: row.id,
    aggregateVersion: BigInt(row.row_version),
    eventType,
    payload: {
      source_entity_id: row.source_id,
      target_entity_id: row.target_id,
      relationship_type: row.relationship_type,
      strength: row.strength,
      target_version: row.target_version,
      target_label: row.target_label,
      ...payload,
    },
    ...actor,
  };
}

/** A target pin: a version, a label, or neither (latest). */
export interface Pin {
  version: number | null;
  label: string | null;
}

/** `latest` is what no pin means: stored as no pin, so that one state has one form. */
function normalizePin(pin: Pin): Pin {
  return pin.label === "latest" ? { version: null, label: null } : pin;
}

function checkMetadata(metadata: Record<string, unknown>, field: string): void {
  const bytes = Buffer.byteLength(canonicalJson(metadata));
  if (bytes > MAX_METADATA_BYTES) {
    throw new InvalidArgumentError({ field, description: `metadata is ${bytes} bytes serialized; at most ${MAX_METADATA_BYTES} are allowed` });
  }
}

/** INVALID_ARGUMENT naming the pin field unless the pinned version exists / the label is on the target now. */
async function checkPin(trx: Knex.Transaction, tenantId: string, targetId: string, pin: Pin, prefix: string): Promise<void> {
  if (pin.version !== null && !(await store.versionExists(trx, tenantId, targetId, pin.version))) {
    throw new InvalidArgumentError({ field: `${prefix}.target_version`, description: `the target has no version ${pin.version}` });
  }
  if (pin.label !== null && !(await store.labelExists(trx, tenantId, targetId, pin.label))) {
    throw new InvalidArgumentError({ field: `${prefix}.target_label`, description: `the target has no label "${pin.label}"` });
  }
}

function requireLive(entity: store.EntityRow, field: string): void {
  if (entity.deleted_at) {
    throw new FailedPreconditionError(`${field}: the entity is deleted`, {
      reason: ErrorReason.RESOURCE_DELETED,
      metadata: { field, delete_time: entity.deleted_at.toISOString() },
    });
  }
}

/**
 * Both ends as the caller sees them: NOT_FOUND (naming the field) for one that does not exist or
 * that the caller may not view; PERMISSION_DENIED without edit on the source when `needEdit`.
 */
async function checkEnds(trx: Knex.Transaction | TenantReads, caller: Caller, sourceId: string, targetId: string, needEdit: boolean, prefix: string) {
  const found = await store.findEntities(trx, caller, [sourceId, targetId]);
  const source = found.get(sourceId);
  const target = found.get(targetId);
  if (!source || source.permission < VIEW) throw entityNotFound(`${prefix}source_entity_id`);
  if (!target || target.permission < VIEW) throw entityNotFound(`${prefix}target_entity_id`);
  if (needEdit && source.permission < EDIT) throw editDenied();
  return { source, target };
}

/** The shortest acyclic path from `from` to `to` (both included), breadth first, each node expanded once. */
async function acyclicPath(trx: Knex.Transaction, tenantId: string, from: string, to: string): Promise<string[]> {
  const parent = new Map<string, string | null>([[from, null]]);
  let frontier = [from];
  for (let depth = 0; frontier.length > 0 && depth <= MAX_DEPTH + 1; depth++) {
    const next: string[] = [];
    for (const edge of await store.acyclicEdgesFrom(trx, tenantId, frontier)) {
      if (parent.has(edge.target_id)) continue;
      parent.set(edge.target_id, edge.source_id);
      next.push(edge.target_id);
    }
    if (parent.has(to)) break;
    frontier = next;
  }
  const path: string[] = [];
  for (let at: string | null | undefined = to; at; at = parent.get(at)) path.unshift(at);
  return path;
}

export interface NewRelationship {
  sourceId: string;
  targetId: string;
  type: RelationshipType;
  strength: number;
  metadata: Record<string, unknown>;
  pin: Pin;
  requestId: string;
}

/**
 * Creates a relationship. Needs view on both ends and edit on the source; both must be live. An
 * acyclic edge takes the tenant's acyclic-edge lock first, then the check sees every committed
 * edge: of concurrent edges that together would close a cycle, exactly one commits, the others get
 * FAILED_PRECONDITION (RELATIONSHIP_CYCLE) with the cycle's path. The chain through the new edge
 * may not exceed MAX_DEPTH edges, the source may not exceed MAX_FAN_OUT relationships. A retry
 * with the same request id returns the first result; the same id with another request is
 * ALREADY_EXISTS (REQUEST_ID_REUSED).
 */
export async function createRelationship(db: Knex, caller: Caller, input: NewRelationship, actor: Actor): Promise<RelationshipRow> {
  checkMetadata(input.metadata, "relationship.metadata");
  return withTenant(db, scopeOf(caller), (trx) => createInTransaction(trx, caller, input, actor));
}

/** CreateRelationship's work inside the caller's transaction (AcceptSuggestion creates in its own). */
export async function createInTransaction(trx: Knex.Transaction, caller: Caller, input: NewRelationship, actor: Actor): Promise<RelationshipRow> {
  const pin = normalizePin(input.pin);
  if (ACYCLIC_TYPES.includes(input.type)) await store.lockAcyclicEdges(trx, caller.tenantId);
  await store.lockSource(trx, caller.tenantId, input.sourceId);
  const { source, target } = await checkEnds(trx, caller, input.sourceId, input.targetId, true, "relationship.");
  if (input.requestId !== "") {
    const first = await store.findByRequestId(trx, caller.tenantId, input.requestId);
    if (first) {
      const same =
        first.source_id === input.sourceId &&
        first.target_id === input.targetId &&
        first.relationship_type === input.type &&
        first.created_by === (caller.userId ?? null) &&
        first.created_by_api_key_id === apiKeyIdOf(caller);
      if (!same) throw new AlreadyExistsError("request_id was already used for a different request", { reason: ErrorReason.REQUEST_ID_REUSED });
      return first;
    }
  }
  requireLive(source, "relationship.source_entity_id");
  requireLive(target, "relationship.target_entity_id");
  await checkPin(trx, caller.tenantId, input.targetId, pin, "relationship");
  const existing = await store.findEdge(trx, caller.tenantId, input.sourceId, input.targetId, input.type);
  if (existing) {
    throw new AlreadyExistsError(`a ${input.type} relationship from the source to the target exists`, {
      metadata: { resource_type: "relationship", relationship_id: existing.id },
    });
  }
  if ((await store.countOutgoing(trx, caller.tenantId, input.sourceId)) >= MAX_FAN_OUT) {
    throw new ResourceExhaustedError(`the source has ${MAX_FAN_OUT} relationships, the most one entity may have`, {
      reason: ErrorReason.QUOTA_EXCEEDED,
      metadata: { metric: "max_fan_out", limit: String(MAX_FAN_OUT) },
    });
  }
  if (ACYCLIC_TYPES.includes(input.type)) {
    const reach = await store.acyclicReach(trx, caller.tenantId, input.sourceId, input.targetId, MAX_DEPTH);
    if (reach.cycle) {
      const path = [input.sourceId, ...(await acyclicPath(trx, caller.tenantId, input.targetId, input.sourceId))];
      throw new FailedPreconditionError(`the relationship would close a cycle of depends_on / part_of relationships: ${path.join(" -> ")}`, {
        reason: ErrorReason.RELATIONSHIP_CYCLE,
        metadata: { cycle: path.join(",") },
      });
    }
    const depth = reach.above + 1 + reach.below;
    if (depth > MAX_DEPTH) {
      throw new FailedPreconditionError(`the relationship would make a chain of ${depth} depends_on / part_of relationships; at most ${MAX_DEPTH} are allowed`, {
        reason: ErrorReason.RELATIONSHIP_TOO_DEEP,
        metadata: { max_depth: String(MAX_DEPTH), depth: String(depth) },
      });
    }
  }
  const row = await store.insertRelationship(trx, {
    tenantId: caller.tenantId,
    sourceId: input.sourceId,
    targetId: input.targetId,
    type: input.type,
    strength: input.strength,
    metadata: input.metadata,
    targetVersion: pin.version,
    targetLabel: pin.label,
    createdBy: caller.userId ?? null,
    createdByApiKeyId: apiKeyIdOf(caller),
    requestId: input.requestId || null,
  });
  await appendEvents(trx, [relationshipEvent(row, "graph.relationship.created", actor)]);
  return row;
}

/** A relationship the caller may see: NOT_FOUND unless it exists and the caller may view both ends. */
export async function getRelationship(db: Knex, caller: Caller, id: string): Promise<RelationshipRow> {
  const reads = readsOf(db, caller);
  const row = await store.findRelationship(reads, caller.tenantId, id);
  if (!row) throw relationshipNotFound();
  const ends = await store.findEntities(reads, caller, [row.source_id, row.target_id]);
  if ((ends.get(row.source_id)?.permission ?? 0) < VIEW || (ends.get(row.target_id)?.permission ?? 0) < VIEW) throw relationshipNotFound();
  return row;
}

export interface ListQuery {
  entityId: string;
  direction: "outgoing" | "incoming" | "both";
  types: RelationshipType[];
  minStrength: number;
  pageSize: number;
  pageToken: string;
}

/** One page of an entity's relationships, newest first; NOT_FOUND unless the caller may view the entity. */
export async function listRelationships(db: Knex, caller: Caller, q: ListQuery): Promise<{ relationships: RelationshipRow[]; nextPageToken: string }> {
  const params = { e: q.entityId, d: q.direction, t: [...q.types].sort(), s: q.minStrength };
  const cursor = decodePageCursor(q.pageToken, params, { c: CURSOR_TIMESTAMP, i: CURSOR_UUID });
  const reads = readsOf(db, caller);
  const entity = (await store.findEntities(reads, caller, [q.entityId])).get(q.entityId);
  if (!entity || entity.permission < VIEW) throw entityNotFound("entity_id");
  const limit = pageSizeOf(q.pageSize);
  const rows = await store.listRelationships(reads, caller, {
    entityId: q.entityId,
    outgoing: q.direction !== "incoming",
    incoming: q.direction !== "outgoing",
    types: q.types,
    minStrength: q.minStrength,
    after: cursor ? { createdAt: cursor.c, id: cursor.i } : undefined,
    limit: limit + 1,
  });
  const { page, nextPageToken } = pageOf(rows, limit, params, (last) => ({ c: last.created_at.toISOString(), i: last.id }));
  return { relationships: page, nextPageToken };
}

/**
 * Locks a relationship for a change and checks it: NOT_FOUND unless it exists and both ends are
 * visible, PERMISSION_DENIED without edit on the source, ABORTED on a stale etag.
 */
async function lockForChange(trx: Knex.Transaction, caller: Caller, id: string, etag: string): Promise<RelationshipRow> {
  const current = await store.findRelationship(trx, caller.tenantId, id, true);
  if (!current) throw relationshipNotFound();
  const ends = await store.findEntities(trx, caller, [current.source_id, current.target_id]);
  const source = ends.get(current.source_id);
  if ((source?.permission ?? 0) < VIEW || (ends.get(current.target_id)?.permission ?? 0) < VIEW) throw relationshipNotFound();
  if (source!.permission < EDIT) throw editDenied();
  checkEtag(etag, current.row_version, "relationship");
  return current;
}

/** What an update replaces: each present field is the new value. */
export interface RelationshipUpdate {
  strength?: number;
  metadata?: Record<string, unknown>;
  pin?: Pin;
}

/**
 * Updates strength, metadata and pin (the mask's fields) under the relationship's row lock, after
 * the access (edit on the source, view on the target) and etag checks. A change of strength or pin
 * starts a new revision; writing the same values changes nothing.
 */
export async function updateRelationship(db: Knex, caller: Caller, id: string, etag: string, update: RelationshipUpdate, actor: Actor): Promise<RelationshipRow> {
  if (update.metadata) checkMetadata(update.metadata, "relationship.metadata");
  return withTenant(db, scopeOf(caller), async (trx) => {
    const current = await lockForChange(trx, caller, id, etag);
    const pin = update.pin ? normalizePin(update.pin) : { version: current.target_version, label: current.target_label };
    if (update.pin && (pin.version !== current.target_version || pin.label !== current.target_label)) {
      await checkPin(trx, caller.tenantId, current.target_id, pin, "relationship");
    }
    const next = { strength: update.strength ?? current.strength, metadata: update.metadata ?? current.metadata, targetVersion: pin.version, targetLabel: pin.label };
    const unchanged =
      next.strength === current.strength && next.targetVersion === current.target_version && next.targetLabel === current.target_label && canonicalJson(next.metadata) === canonicalJson(current.metadata);
    if (unchanged) return current;
    const row = await store.updateRelationship(trx, current, next);
    await appendEvents(trx, [relationshipEvent(row, "graph.relationship.updated", actor)]);
    return row;
  });
}

/** Deletes a relationship (edit on the source, etag), closing its history; the event records it. */
export async function deleteRelationship(db: Knex, caller: Caller, id: string, etag: string, actor: Actor): Promise<void> {
  await withTenant(db, scopeOf(caller), async (trx) => {
    const current = await lockForChange(trx, caller, id, etag);
    await store.deleteRelationship(trx, current);
    await appendEvents(trx, [relationshipEvent({ ...current, row_version: String(BigInt(current.row_version) + 1n) }, "graph.relationship.deleted", actor)]);
  });
}
