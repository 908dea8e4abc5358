import type { JsonObject, MessageInitShape } from "@bufbuild/protobuf";
import { actorOf, callerOf, InvalidArgumentError, invertEnumMap, principalName, timestampFromDb, type ServiceDeps, type ServiceHandlers } from "@promptcraft/platform";
import type { GraphService } from "@promptcraft/proto/promptcraft/graph/v1/graph_service_pb";
import { Direction, RelationshipType, type Relationship, type RelationshipSchema } from "@promptcraft/proto/promptcraft/graph/v1/resources_pb";
import type { GraphConfig } from "../config.js";
import * as relationships from "../domain/relationships.js";

const TYPE_TO_PROTO: Record<relationships.RelationshipType, RelationshipType> = {
  depends_on: RelationshipType.DEPENDS_ON,
  part_of: RelationshipType.PART_OF,
  derived_from: RelationshipType.DERIVED_FROM,
  suggests: RelationshipType.SUGGESTS,
};
const TYPE_FROM_PROTO = invertEnumMap(TYPE_TO_PROTO);

/** A relationship type of the contract (validated as defined and set by the proto rules). */
export function relationshipTypeOf(type: RelationshipType): relationships.RelationshipType {
  return TYPE_FROM_PROTO[type] ?? "depends_on";
}
export function relationshipTypeToProto(type: relationships.RelationshipType): RelationshipType {
  return TYPE_TO_PROTO[type];
}
export function relationshipTypesOf(types: readonly RelationshipType[]): relationships.RelationshipType[] {
  return types.map(relationshipTypeOf);
}

/** A direction of the contract; `fallback` for unset. */
export function directionOf(direction: Direction, fallback: "outgoing" | "incoming" | "both"): "outgoing" | "incoming" | "both" {
  switch (direction) {
    case Direction.OUTGOING:
      return "outgoing";
    case Direction.INCOMING:
      return "incoming";
    case Direction.BOTH:
      return "both";
    default:
      return fallback;
  }
}

/** Who created it: a user's UUID, `api_key:<uuid>` for a key, empty when unknown. */
function creatorName(row: relationships.RelationshipRow): string {
  return principalName(row.created_by, row.created_by_api_key_id);
}

export function relationshipToProto(row: relationships.RelationshipRow): MessageInitShape<typeof RelationshipSchema> {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    sourceEntityId: row.source_id,
    targetEntityId: row.target_id,
    type: TYPE_TO_PROTO[row.relationship_type],
    strength: row.strength,
    metadata: row.metadata as JsonObject,
    targetPin:
      row.target_version !== null
        ? { case: "targetVersion", value: row.target_version }
        : row.target_label !== null
          ? { case: "targetLabel", value: row.target_label }
          : { case: undefined },
    creatorId: creatorName(row),
    createTime: timestampFromDb(row.created_at),
    updateTime: timestampFromDb(row.updated_at),
    etag: row.row_version,
  };
}

function pinOf(r: Relationship): relationships.Pin {
  return {
    version: r.targetPin.case === "targetVersion" ? r.targetPin.value : null,
    label: r.targetPin.case === "targetLabel" ? r.targetPin.value : null,
  };
}

/** The fields an update mask replaces (the contract allows `*`, strength, metadata, target_version, target_label). */
function updateOf(r: Relationship, paths: readonly string[]): relationships.RelationshipUpdate {
  if (paths.length === 0) throw new InvalidArgumentError({ field: "update_mask", description: "name at least one field to update" });
  const all = paths.includes("*");
  const update: relationships.RelationshipUpdate = {};
  if (all || paths.includes("strength")) update.strength = r.strength ?? 1;
  if (all || paths.includes("metadata")) update.metadata = (r.metadata ?? {});
  if (all || paths.includes("target_version") || paths.includes("target_label")) update.pin = pinOf(r);
  return update;
}

/** GraphService relationships: Create, Get, List, Update, Delete. */
export function relationshipHandlers(deps: ServiceDeps<GraphConfig>): Pick<
  ServiceHandlers<typeof GraphService>,
  "createRelationship" | "getRelationship" | "listRelationships" | "updateRelationship" | "deleteRelationship"
> {
  const db = deps.db;
  return {
    createRelationship: async (request, ctx) => {
      const r = request.relationship!;
      const created = await relationships.createRelationship(
        db,
        callerOf(ctx),
        {
          sourceId: r.sourceEntityId.toLowerCase(),
          targetId: r.targetEntityId.toLowerCase(),
          type: relationshipTypeOf(r.type),
          strength: r.strength ?? 1,
          metadata: (r.metadata ?? {}),
          pin: pinOf(r),
          requestId: request.requestId.toLowerCase(),
        },
        actorOf(ctx),
      );
      return relationshipToProto(created);
    },
    getRelationship: async (request, ctx) => relationshipToProto(await relationships.getRelationship(db, callerOf(ctx), request.relationshipId.toLowerCase())),
    listRelationships: async (request, ctx) => {
      const page = await relationships.listRelationships(db, callerOf(ctx), {
        entityId: request.entityId.toLowerCase(),
        direction: directionOf(request.direction, "outgoing"),
        types: relationshipTypesOf(request.types),
        minStrength: request.minStrength,
        pageSize: request.pageSize,
        pageToken: request.pageToken,
      });
      return { relationships: page.relationships.map(relationshipToProto), nextPageToken: page.nextPageToken };
    },
    updateRelationship: async (request, ctx) => {
      const r = request.relationship!;
      const update = updateOf(r, request.updateMask?.paths ?? []);
      return relationshipToProto(await relationships.updateRelationship(db, callerOf(ctx), r.id.toLowerCase(), r.etag, update, actorOf(ctx)));
    },
    deleteRelationship: async (request, ctx) => {
      await relationships.deleteRelationship(db, callerOf(ctx), request.relationshipId.toLowerCase(), request.etag, actorOf(ctx));
      return {};
    },
  };
}
