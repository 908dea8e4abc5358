import { callerOf, dbTimeFromTimestamp, timestampFromDb, type ServiceDeps, type ServiceHandlers } from "@promptcraft/platform";
import { EntityType } from "@promptcraft/proto/promptcraft/content/v1/resources_pb";
import type { GraphService } from "@promptcraft/proto/promptcraft/graph/v1/graph_service_pb";
import { ImpactKind, RelationshipType, ResolutionKind, ResolutionState } from "@promptcraft/proto/promptcraft/graph/v1/resources_pb";
import type { GraphConfig } from "../config.js";
import type { GraphState } from "../index.js";
import { MAX_DEPTH } from "../domain/relationships.js";
import * as traversal from "../domain/traversal.js";
import { directionOf, relationshipToProto, relationshipTypesOf, relationshipTypeToProto } from "./relationships.js";
import { reportResolve } from "./usage.js";

const ENTITY_TYPE_TO_PROTO = { context: EntityType.CONTEXT, template: EntityType.TEMPLATE, workflow: EntityType.WORKFLOW, library: EntityType.LIBRARY } as const;
const KIND_TO_PROTO: Record<traversal.ResolutionKind, ResolutionKind> = { pinned: ResolutionKind.PINNED, label: ResolutionKind.LABEL, latest: ResolutionKind.LATEST };
const STATE_TO_PROTO: Record<traversal.ResolutionState, ResolutionState> = {
  resolved: ResolutionState.RESOLVED,
  label_missing: ResolutionState.LABEL_MISSING,
  version_missing: ResolutionState.VERSION_MISSING,
  entity_deleted: ResolutionState.ENTITY_DELETED,
  not_visible: ResolutionState.NOT_VISIBLE,
};

/** GraphService walks: GetEntityGraph, ResolveDependencies, AnalyzeImpact (limits and defaults of the contract). */
export function traversalHandlers(deps: ServiceDeps<GraphConfig>, state: GraphState): Pick<ServiceHandlers<typeof GraphService>, "getEntityGraph" | "resolveDependencies" | "analyzeImpact"> {
  const db = deps.db;
  return {
    getEntityGraph: async (request, ctx) => {
      const entityId = request.entityId.toLowerCase();
      const graph = await traversal.getEntityGraph(db, callerOf(ctx), {
        entityId,
        depth: request.depth || 2,
        direction: directionOf(request.direction, "both"),
        types: relationshipTypesOf(request.types),
        minStrength: request.minStrength,
        maxNodes: request.maxNodes || 500,
        includeDeleted: request.includeDeleted,
      });
      return {
        rootEntityId: entityId,
        nodes: graph.nodes.map((n) => ({
          entityId: n.entityId,
          entityType: ENTITY_TYPE_TO_PROTO[n.entityType],
          title: n.title,
          currentVersion: n.currentVersion,
          depth: n.depth,
          deleted: n.deleted,
        })),
        edges: graph.edges.map(relationshipToProto),
        truncated: graph.truncated,
      };
    },
    resolveDependencies: async (request, ctx) => {
      const entityId = request.entityId.toLowerCase();
      const types = relationshipTypesOf(request.types.length > 0 ? request.types : [RelationshipType.DEPENDS_ON]);
      const started = performance.now();
      const resolution = await traversal.resolveDependencies(db, callerOf(ctx), {
        entityId,
        asOf: request.asOfTime ? dbTimeFromTimestamp(request.asOfTime, "as_of_time") : undefined,
        maxDepth: request.maxDepth || MAX_DEPTH,
        types,
      });
      reportResolve(state.usage, ctx, {
        entityId,
        latencyMs: performance.now() - started,
        dependencies: resolution.dependencies.length,
        complete: resolution.complete,
        asOf: request.asOfTime !== undefined,
      });
      return {
        rootEntityId: entityId,
        dependencies: resolution.dependencies.map((d) => ({
          entityId: d.entityId,
          entityType: d.entityType ? ENTITY_TYPE_TO_PROTO[d.entityType] : EntityType.UNSPECIFIED,
          title: d.title,
          dependentEntityId: d.dependentEntityId,
          relationshipId: d.relationshipId,
          relationshipType: relationshipTypeToProto(d.relationshipType),
          depth: d.depth,
          resolutionKind: KIND_TO_PROTO[d.kind],
          label: d.label,
          state: STATE_TO_PROTO[d.state],
          version: d.version ?? undefined,
          conflicting: d.conflicting,
        })),
        complete: resolution.complete,
        resolveTime: request.asOfTime ?? timestampFromDb(resolution.resolveTime),
      };
    },
    analyzeImpact: async (request, ctx) => {
      const entityId = request.entityId.toLowerCase();
      const impact = await traversal.analyzeImpact(db, callerOf(ctx), {
        entityId,
        label: request.label,
        maxDepth: request.maxDepth || MAX_DEPTH,
        types: relationshipTypesOf(request.types),
        maxResults: request.maxResults || 1000,
      });
      return {
        entityId,
        impacted: impact.impacted.map((n) => ({
          entityId: n.entityId,
          entityType: ENTITY_TYPE_TO_PROTO[n.entityType],
          title: n.title,
          depth: n.depth,
          impact: n.affected ? ImpactKind.AFFECTED : ImpactKind.PINNED,
          pathRelationshipIds: n.path,
          labels: n.labels,
          pathCount: BigInt(n.pathCount),
        })),
        affectedCount: impact.affectedCount,
        pinnedCount: impact.pinnedCount,
        truncated: impact.truncated,
      };
    },
  };
}

