import { ConnectError } from "@promptcraft/client";
import { callerOf, FailedPreconditionError, onBehalfOf, peerUnavailable, reportCallUsage, type CallContext, type ServiceDeps, type ServiceHandlers } from "@promptcraft/platform";
import { UsageKind } from "@promptcraft/proto/promptcraft/analytics/v1/resources_pb";
import type { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { RelationshipType, ResolutionState } from "@promptcraft/proto/promptcraft/graph/v1/resources_pb";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import type { ContentConfig } from "../config.js";
import { MAX_PARTIAL_DEPTH, MAX_RENDERED_BYTES, renderEntity, type ResolveDependencies } from "../domain/render.js";
import type { ContentState } from "../index.js";
import { entityRefOf, selectorOf, TYPE_TO_PROTO } from "./entities.js";

/** How long a render waits for the graph service's resolution of its partials. */
const GRAPH_TIMEOUT_MS = 3000;

/** Why a dependency does not resolve, as the error of the partial that needs it says. */
const UNRESOLVED: Partial<Record<ResolutionState, string>> = {
  [ResolutionState.LABEL_MISSING]: "the label its relationship follows points to no version",
  [ResolutionState.VERSION_MISSING]: "the version its relationship pins does not exist",
  [ResolutionState.ENTITY_DELETED]: "the dependency is deleted",
  [ResolutionState.NOT_VISIBLE]: "the dependency is not visible to you",
};

/** GraphService.ResolveDependencies of a template's depends_on closure, on behalf of the caller of `ctx`. */
function graphResolver(state: ContentState, ctx: CallContext): ResolveDependencies {
  return async (templateId) => {
    let response;
    try {
      response = await state.graph.client.resolveDependencies(
        { entityId: templateId, types: [RelationshipType.DEPENDS_ON], maxDepth: MAX_PARTIAL_DEPTH },
        onBehalfOf(ctx, GRAPH_TIMEOUT_MS),
      );
    } catch (err) {
      const unavailable = peerUnavailable("graph", err, ctx.signal);
      if (unavailable) throw unavailable;
      // The graph refused (it sees the template otherwise than content does): say so, as a precondition.
      throw new FailedPreconditionError(`the template's dependencies cannot be resolved: ${ConnectError.from(err).rawMessage}`, {
        reason: ErrorReason.PARTIAL_UNRESOLVED,
        metadata: { template_entity_id: templateId, problem: "graph refused the resolution" },
      });
    }
    return response.dependencies.map((d) => ({
      dependentId: d.dependentEntityId,
      entityId: d.entityId,
      version: d.state === ResolutionState.RESOLVED ? d.version : undefined,
      problem: d.state === ResolutionState.RESOLVED ? undefined : (UNRESOLVED[d.state] ?? "the dependency does not resolve"),
    }));
  };
}

/**
 * ContentService.RenderTemplate (rules in domain/render.ts). Read-only: no version, no audit event;
 * a `render` usage event. First one unit of the tenant's monthly render quota (analytics' answer,
 * cached: platform quota-gate.ts), so a tenant over it costs no database work.
 */
export function templateHandlers(deps: ServiceDeps<ContentConfig>, state: ContentState): ServiceHandlers<typeof ContentService> {
  return {
    renderTemplate: async (request, ctx) => {
      await state.renderQuota.consume(ctx);
      const { row, rendered } = await renderEntity(
        deps.db,
        callerOf(ctx),
        entityRefOf(request),
        selectorOf(request),
        request.variables ?? {},
        { strict: request.strict, maxBytes: MAX_RENDERED_BYTES },
        graphResolver(state, ctx),
      );
      reportCallUsage(state.usage, ctx, { kind: UsageKind.RENDER, entityId: row.id, entityVersion: row.version, label: request.label ?? "" });
      return {
        text: rendered.text,
        entityId: row.id,
        name: row.name,
        version: row.version,
        contentHash: row.content_hash,
        missingVariables: rendered.missingVariables,
        unusedVariables: rendered.unusedVariables,
        receipt: rendered.receipt.map((entry) => ({
          entityId: entry.entityId,
          name: entry.name,
          type: TYPE_TO_PROTO[entry.entityType],
          version: entry.version,
          contentHash: entry.contentHash,
          includedByEntityId: entry.includedBy ?? "",
        })),
      };
    },
  };
}
