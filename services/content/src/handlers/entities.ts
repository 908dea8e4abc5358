import type { JsonObject, MessageInitShape } from "@bufbuild/protobuf";
import { UsageKind } from "@promptcraft/proto/promptcraft/analytics/v1/resources_pb";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { epochMicros, type VersionFields } from "@promptcraft/db";
import {
  actorOf,
  callerOf,
  dbTimeFromTimestamp,
  InvalidArgumentError,
  invertEnumMap,
  onBehalfOf,
  peerUnavailable,
  principalFromName,
  principalName,
  reportCallUsage,
  timestampFromDb,
  type CallContext,
  type ServiceDeps,
  type ServiceHandlers,
} from "@promptcraft/platform";
import { Direction, RelationshipType } from "@promptcraft/proto/promptcraft/graph/v1/resources_pb";
import { ConnectError } from "@promptcraft/client";
import type { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import {
  EntityStatus,
  EntityType,
  EntityView as ProtoEntityView,
  Permission,
  Visibility,
  type Entity,
  type EntitySchema,
} from "@promptcraft/proto/promptcraft/content/v1/resources_pb";
import type { ContentConfig } from "../config.js";
import type { ContentState } from "../index.js";
import { type PermissionLevel } from "../domain/access.js";
import * as entities from "../domain/entities.js";
import type { EntityRef } from "../domain/names.js";
import { applyUpdateMask, checkText, checkVersionFields } from "../domain/fields.js";
import type { EntityOrder, VersionSelector } from "../store/entities.js";
import { nearDuplicateCheck } from "./near-duplicates.js";

type StoreType = entities.EntityRow["entity_type"];
type StoreStatus = VersionFields["status"];
type StoreVisibility = VersionFields["visibility"];

export const TYPE_TO_PROTO: Record<StoreType, EntityType> = {
  context: EntityType.CONTEXT,
  template: EntityType.TEMPLATE,
  workflow: EntityType.WORKFLOW,
  library: EntityType.LIBRARY,
};
const TYPE_FROM_PROTO = invertEnumMap(TYPE_TO_PROTO);
const WRITABLE_STATUS_TO_PROTO: Record<Exclude<StoreStatus, "deprecated">, EntityStatus> = {
  draft: EntityStatus.DRAFT,
  published: EntityStatus.PUBLISHED,
  archived: EntityStatus.ARCHIVED,
};
const STATUS_FROM_PROTO = invertEnumMap(WRITABLE_STATUS_TO_PROTO);
// `deprecated` is a schema status the contract does not name; nothing the API writes uses it.
const STATUS_TO_PROTO: Record<StoreStatus, EntityStatus> = { ...WRITABLE_STATUS_TO_PROTO, deprecated: EntityStatus.ARCHIVED };
const VISIBILITY_TO_PROTO: Record<StoreVisibility, Visibility> = { private: Visibility.PRIVATE, tenant: Visibility.TENANT };
const VISIBILITY_FROM_PROTO = invertEnumMap(VISIBILITY_TO_PROTO);
const PERMISSION_TO_PROTO: Record<PermissionLevel, Permission> = {
  none: Permission.UNSPECIFIED,
  view: Permission.VIEW,
  edit: Permission.EDIT,
  admin: Permission.ADMIN,
};

/** An entity type of the contract (validated as defined and not unspecified by the proto rules). */
export function entityTypeOf(type: EntityType): StoreType {
  return TYPE_FROM_PROTO[type] ?? "context";
}
export function entityStatusOf(status: EntityStatus): StoreStatus {
  return STATUS_FROM_PROTO[status] ?? "draft";
}
export function visibilityOf(visibility: Visibility): StoreVisibility | undefined {
  return VISIBILITY_FROM_PROTO[visibility];
}

/** An entity as of one version as the contract's Entity. `labels` gets `latest` when the version shown is the current one at the time read for. */
export function entityToProto({ row, permission }: entities.EntityView, readTime?: Date): MessageInitShape<typeof EntitySchema> {
  const at = readTime && epochMicros(readTime);
  const currentThen = at !== undefined ? epochMicros(row.valid_from) <= at && (row.valid_to === null || epochMicros(row.valid_to) > at) : row.valid_to === null;
  return {
    id: row.id,
    name: row.name,
    tenantId: row.tenant_id,
    type: TYPE_TO_PROTO[row.entity_type],
    ownerId: principalName(row.owner_id, row.owner_api_key_id),
    title: row.title,
    description: row.description,
    status: STATUS_TO_PROTO[row.status],
    visibility: VISIBILITY_TO_PROTO[row.visibility],
    content: (row.content ?? undefined) as JsonObject | undefined,
    tags: row.tags,
    metadata: (row.metadata ?? undefined) as JsonObject | undefined,
    version: row.version,
    currentVersion: row.current_version,
    commitMessage: row.commit_message,
    authorId: principalName(row.author_id, row.author_api_key_id),
    contentHash: row.content_hash,
    restoredFromVersion: row.rolled_back_from ?? undefined,
    labels: currentThen ? ["latest", ...row.labels] : row.labels,
    createTime: timestampFromDb(row.created_at),
    updateTime: timestampFromDb(row.updated_at),
    revisionCreateTime: timestampFromDb(row.valid_from),
    revisionEndTime: row.valid_to ? timestampFromDb(row.valid_to) : undefined,
    deleteTime: row.deleted_at ? timestampFromDb(row.deleted_at) : undefined,
    purgeTime: row.purge_time ? timestampFromDb(row.purge_time) : undefined,
    etag: row.row_version,
    favorite: row.favorite,
    callerPermission: PERMISSION_TO_PROTO[permission],
  };
}

/** Whether a view asks for content and metadata; `fallback` is the method's default. */
export function isFullView(view: ProtoEntityView, fallback: "basic" | "full"): boolean {
  return view === ProtoEntityView.UNSPECIFIED ? fallback === "full" : view === ProtoEntityView.FULL;
}

/** The versioned fields a request's Entity carries (defaults for what it leaves unset). */
function requestedFields(e: Entity): VersionFields {
  return {
    title: e.title,
    description: e.description,
    status: entityStatusOf(e.status),
    visibility: visibilityOf(e.visibility) ?? "private",
    content: e.content ?? {},
    tags: e.tags,
    metadata: e.metadata ?? {},
  };
}

/** The version a request selects: `version`, `label` (`latest` = current) with or without `as_of_time`, a time, or the current one. */
export function selectorOf(request: { version?: number; label?: string; asOfTime?: Timestamp }): VersionSelector {
  const time = request.asOfTime ? dbTimeFromTimestamp(request.asOfTime, "as_of_time") : undefined;
  if (request.version !== undefined) return { kind: "version", version: request.version };
  if (request.label !== undefined && request.label !== "latest") return { kind: "label", label: request.label, time };
  if (time) return { kind: "as_of", time };
  return { kind: "current" };
}

/**
 * The entity a read names: exactly one of `entity_id` and `name` (the contract validates each; that
 * exactly one is given is checked here, to name the field: `entity_id` when neither is, `name` when both are).
 */
export function entityRefOf(request: { entityId: string; name: string }): EntityRef {
  if (request.entityId !== "" && request.name !== "") {
    throw new InvalidArgumentError({ field: "name", description: "give entity_id or name, not both" });
  }
  if (request.name !== "") return { name: request.name };
  if (request.entityId === "") throw new InvalidArgumentError({ field: "entity_id", description: "entity_id or name is required" });
  return { id: request.entityId };
}

const ORDERS: Record<string, EntityOrder> = {
  "": { key: "update_time", desc: true },
  update_time: { key: "update_time", desc: false },
  "update_time asc": { key: "update_time", desc: false },
  "update_time desc": { key: "update_time", desc: true },
  create_time: { key: "create_time", desc: false },
  "create_time asc": { key: "create_time", desc: false },
  "create_time desc": { key: "create_time", desc: true },
  title: { key: "title", desc: false },
  "title asc": { key: "title", desc: false },
  "title desc": { key: "title", desc: true },
  name: { key: "name", desc: false },
  "name asc": { key: "name", desc: false },
  "name desc": { key: "name", desc: true },
};

/**
 * ContentService entities: CreateEntity, GetEntity, BatchGetEntities, ListEntities, UpdateEntity,
 * DeleteEntity, UndeleteEntity, PurgeEntity. Access rules in domain/access.ts.
 */
/** How long a delete waits for the graph service's list of dependents. */
const GRAPH_TIMEOUT_MS = 3000;

/** Dependents of an entity per the graph service (incoming depends_on / part_of), on behalf of the caller of `ctx`. */
function graphDependents(state: ContentState, ctx: CallContext): entities.FindDependents {
  return async (entityId) => {
    try {
      const page = await state.graph.client.listRelationships(
        { entityId, direction: Direction.INCOMING, types: [RelationshipType.DEPENDS_ON, RelationshipType.PART_OF], pageSize: 50 },
        onBehalfOf(ctx, GRAPH_TIMEOUT_MS),
      );
      return { entityIds: [...new Set(page.relationships.map((r) => r.sourceEntityId))], more: page.nextPageToken !== "" };
    } catch (err) {
      const down = peerUnavailable("graph", err, ctx.signal);
      if (down instanceof ConnectError) throw down; // the caller cancelled
      // No answer from graph: a soft delete is reversible (UndeleteEntity), so it goes ahead
      // rather than making deletes depend on the graph service; said in the log.
      ctx.log.warn({ entityId, err: ConnectError.from(err).message }, "delete without the dependents check: graph did not answer");
      return { entityIds: [], more: false };
    }
  };
}

export function entityHandlers(deps: ServiceDeps<ContentConfig>, state: ContentState): ServiceHandlers<typeof ContentService> {
  const usage = state.usage;
  const db = deps.db;
  const settings: entities.EntitySettings = { softDeleteRetentionMs: deps.config.SOFT_DELETE_RETENTION_DAYS * 86_400_000 };
  return {
    createEntity: async (request, ctx) => {
      const e = request.entity!;
      const fields = requestedFields(e);
      checkVersionFields(fields, "entity", { commit_message: request.commitMessage });
      const created = await entities.createEntity(
        db,
        callerOf(ctx),
        { type: entityTypeOf(e.type), name: e.name, fields, commitMessage: request.commitMessage, requestId: request.requestId },
        actorOf(ctx),
      );
      const entity = entityToProto(created);
      if (request.checkNearDuplicates) entity.nearDuplicateCheck = await nearDuplicateCheck(state, ctx, entity, deps.log);
      return entity;
    },
    getEntity: async (request, ctx) => {
      const ref = entityRefOf(request);
      const selector = selectorOf(request);
      const found = await entities.getEntity(db, callerOf(ctx), ref, selector, isFullView(request.view, "full"));
      // A read by label is what an SDK fetching `production` does: a `view` of that version.
      if (request.label !== undefined) reportCallUsage(usage, ctx, { kind: UsageKind.VIEW, entityId: found.row.id, entityVersion: found.row.version, label: request.label });
      return entityToProto(found, selector.kind === "as_of" || selector.kind === "label" ? selector.time : undefined);
    },
    batchGetEntities: async (request, ctx) => {
      const { found, missing } = await entities.batchGetEntities(db, callerOf(ctx), request.entityIds, {
        full: isFullView(request.view, "basic"),
        showDeleted: request.showDeleted,
      });
      return { entities: found.map((v) => entityToProto(v)), missingEntityIds: missing };
    },
    listEntities: async (request, ctx) => {
      checkText({ tags_any: request.tagsAny, tags_all: request.tagsAll, title_prefix: request.titlePrefix });
      const page = await entities.listEntities(db, callerOf(ctx), {
        pageSize: request.pageSize,
        pageToken: request.pageToken,
        filter: {
          types: request.types.map(entityTypeOf),
          tagsAny: request.tagsAny,
          tagsAll: request.tagsAll,
          statuses: request.statuses.map(entityStatusOf),
          owner: request.ownerId === "" ? undefined : principalFromName(request.ownerId),
          visibility: visibilityOf(request.visibility),
          favoritesOnly: request.favoritesOnly,
          titlePrefix: request.titlePrefix,
          name: request.name,
          namePrefix: request.namePrefix,
          showDeleted: request.showDeleted,
        },
        order: ORDERS[request.orderBy]!,
        full: isFullView(request.view, "basic"),
      });
      return { entities: page.entities.map((v) => entityToProto(v)), nextPageToken: page.nextPageToken };
    },
    updateEntity: async (request, ctx) => {
      const e = request.entity!;
      const paths = request.updateMask?.paths ?? [];
      if (paths.length === 0) throw new InvalidArgumentError({ field: "update_mask", description: "name at least one field to update" });
      const named = new Set(paths);
      const wildcard = named.has("*");
      if ((wildcard || named.has("status")) && e.status === EntityStatus.UNSPECIFIED) {
        throw new InvalidArgumentError({ field: "entity.status", description: "status is required when the update mask names it" });
      }
      if ((wildcard || named.has("visibility")) && e.visibility === Visibility.UNSPECIFIED) {
        throw new InvalidArgumentError({ field: "entity.visibility", description: "visibility is required when the update mask names it" });
      }
      if (named.has("name") && e.name === "") {
        throw new InvalidArgumentError({ field: "entity.name", description: "name is required when the update mask names it" });
      }
      // A rename is its own field, not a versioned one: the versioned fields are applied without it.
      const versionPaths = paths.filter((p) => p !== "name");
      const requested = requestedFields(e);
      const updated = await entities.updateEntity(
        db,
        callerOf(ctx),
        e.id,
        e.etag,
        (current) => {
          const next = applyUpdateMask(current, requested, versionPaths);
          checkVersionFields(next, "entity", { commit_message: request.commitMessage });
          return next;
        },
        { message: request.commitMessage, requestId: request.requestId, name: named.has("name") ? e.name : undefined },
        actorOf(ctx),
      );
      const entity = entityToProto(updated);
      if (request.checkNearDuplicates) entity.nearDuplicateCheck = await nearDuplicateCheck(state, ctx, entity, deps.log);
      return entity;
    },
    deleteEntity: async (request, ctx) => {
      const findDependents = request.force ? undefined : graphDependents(state, ctx);
      return entityToProto(await entities.deleteEntity(db, callerOf(ctx), request.entityId, request.etag, settings, actorOf(ctx), findDependents));
    },
    undeleteEntity: async (request, ctx) =>
      entityToProto(await entities.undeleteEntity(db, callerOf(ctx), request.entityId, request.etag, request.name, actorOf(ctx))),
    listEntityNameHistory: async (request, ctx) => {
      const page = await entities.listEntityNameHistory(db, callerOf(ctx), { entityId: request.entityId, pageSize: request.pageSize, pageToken: request.pageToken });
      return {
        names: page.names.map((n) => ({
          entityId: n.entity_id,
          name: n.name,
          setterId: principalName(n.set_by, n.set_by_api_key_id),
          startTime: timestampFromDb(n.valid_from),
          endTime: n.valid_to ? timestampFromDb(n.valid_to) : undefined,
        })),
        nextPageToken: page.nextPageToken,
      };
    },
    purgeEntity: async (request, ctx) => {
      await entities.purgeEntity(db, callerOf(ctx), request.entityId, request.force, request.etag, actorOf(ctx));
      return {};
    },
  };
}
