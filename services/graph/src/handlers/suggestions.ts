import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@promptcraft/client";
import { ErrorInfoSchema } from "@promptcraft/proto/google/rpc/error_details_pb";
import { actorOf, callerOf, onBehalfOf, reasonName, timestampFromDb, type CallContext, type ServiceDeps, type ServiceHandlers } from "@promptcraft/platform";
import type { GraphService } from "@promptcraft/proto/promptcraft/graph/v1/graph_service_pb";
import { RelationshipType, SuggestionSource, SuggestionState, type SuggestionSchema } from "@promptcraft/proto/promptcraft/graph/v1/resources_pb";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import type { GraphConfig } from "../config.js";
import * as suggestions from "../domain/suggestions.js";
import type { GraphState } from "../index.js";
import type { SuggestionKind, SuggestionStatus } from "../store/suggestions.js";
import { relationshipToProto, relationshipTypeOf, relationshipTypeToProto } from "./relationships.js";

/** How long GenerateSuggestions waits for search's similar entities, or analytics' co-used ones, before going on without them. */
const PEER_TIMEOUT_MS = 2000;

/**
 * One source of suggestions asked of a peer on behalf of the caller of `ctx`: any failure but the
 * caller's own cancellation becomes `{ unavailable }`, with the cause in words (`known` may name a
 * peer's own answer first; the others are logged as `failure`): suggestions never fail because a
 * peer does. CANCELED while the caller has not cancelled is the peer's doing (its process died and
 * the stream was reset), as the platform's `peerUnavailable` reads it.
 */
async function askPeer<T>(
  peer: string,
  ctx: CallContext,
  call: () => Promise<T>,
  log: ServiceDeps["log"],
  failure: string,
  known: (e: ConnectError) => string | undefined = () => undefined,
): Promise<T | { unavailable: string }> {
  try {
    return await call();
  } catch (err) {
    const e = ConnectError.from(err);
    if (e.code === Code.Canceled && ctx.signal.aborted) throw e;
    const said = known(e);
    if (said !== undefined) return { unavailable: said };
    if (e.code === Code.DeadlineExceeded) return { unavailable: `the ${peer} service did not answer in time` };
    log.warn({ err: e, code: Code[e.code] }, failure);
    return { unavailable: `the ${peer} service is unavailable` };
  }
}

/** SearchService.FindSimilarEntities on behalf of the caller of `ctx` (search filters by the caller's access). */
function searchSimilar(state: GraphState, ctx: CallContext, log: ServiceDeps["log"]): suggestions.FindSimilar {
  return (entityId, minScore, limit) =>
    askPeer(
      "search",
      ctx,
      async () => {
        const r = await state.search.client.findSimilarEntities({ entityId, minScore, pageSize: limit }, onBehalfOf(ctx, PEER_TIMEOUT_MS));
        return { matches: r.results.map((m) => ({ entityId: m.entityId, score: m.score })), model: r.model };
      },
      log,
      "search's FindSimilarEntities failed: suggestions from structure alone",
      (e) =>
        e.code === Code.FailedPrecondition && e.findDetails(ErrorInfoSchema)[0]?.reason === reasonName(ErrorReason.EMBEDDING_NOT_READY)
          ? "the entity is not embedded yet"
          : undefined,
    );
}

/** AnalyticsService.GetEntityCoUsage on behalf of the caller of `ctx` (analytics lists only what the caller may view). */
function analyticsCoUsed(state: GraphState, ctx: CallContext, log: ServiceDeps["log"]): suggestions.FindCoUsed {
  return (entityId, limit) =>
    askPeer(
      "analytics",
      ctx,
      async () => {
        const r = await state.analytics.client.getEntityCoUsage({ entityId, maxEntities: limit, days: CO_USAGE_DAYS }, onBehalfOf(ctx, PEER_TIMEOUT_MS));
        return {
          requestCount: Number(r.requestCount),
          matches: r.entities.map((m) => ({ entityId: m.entityId, sharedRequests: Number(m.sharedRequestCount) })),
          days: CO_USAGE_DAYS,
        };
      },
      log,
      "analytics' GetEntityCoUsage failed: suggestions without co-usage",
    );
}

/** The window of usage co-usage suggestions look at. */
const CO_USAGE_DAYS = 30;

const SOURCE_TO_PROTO: Record<SuggestionKind, SuggestionSource> = {
  similar: SuggestionSource.SIMILARITY,
  co_used: SuggestionSource.CO_USAGE,
  dependency: SuggestionSource.STRUCTURE,
  model: SuggestionSource.SIMILARITY,
};
const STATE_TO_PROTO: Record<SuggestionStatus, SuggestionState> = { open: SuggestionState.PENDING, accepted: SuggestionState.ACCEPTED, dismissed: SuggestionState.DISMISSED };
const STATE_FROM_PROTO: Partial<Record<SuggestionState, SuggestionStatus>> = {
  [SuggestionState.PENDING]: "open",
  [SuggestionState.ACCEPTED]: "accepted",
  [SuggestionState.DISMISSED]: "dismissed",
};

function suggestionToProto(row: suggestions.SuggestionRow): MessageInitShape<typeof SuggestionSchema> {
  return {
    id: row.id,
    entityId: row.entity_id,
    suggestedEntityId: row.suggested_entity_id,
    suggestedEntityTitle: row.suggested_title,
    relationshipType: relationshipTypeToProto(row.relationship_type),
    score: row.score,
    reason: row.reason,
    source: SOURCE_TO_PROTO[row.kind],
    sources: [...new Set(row.sources.map((k) => SOURCE_TO_PROTO[k]))],
    state: STATE_TO_PROTO[row.status],
    createTime: timestampFromDb(row.created_at),
    resolveTime: row.decided_at ? timestampFromDb(row.decided_at) : undefined,
    resolverId: row.decided_by ?? "",
    relationshipId: row.relationship_id ?? "",
    dismissReason: row.dismiss_reason,
  };
}

/** GraphService suggestions: List, Generate, Accept, Dismiss. */
export function suggestionHandlers(deps: ServiceDeps<GraphConfig>, state: GraphState): Pick<
  ServiceHandlers<typeof GraphService>,
  "listSuggestions" | "generateSuggestions" | "acceptSuggestion" | "dismissSuggestion"
> {
  const db = deps.db;
  return {
    listSuggestions: async (request, ctx) => {
      const page = await suggestions.listSuggestions(db, callerOf(ctx), {
        entityId: request.entityId.toLowerCase(),
        statuses: request.states.map((s) => STATE_FROM_PROTO[s] ?? "open"),
        minScore: request.minScore,
        pageSize: request.pageSize,
        pageToken: request.pageToken,
      });
      return { suggestions: page.suggestions.map(suggestionToProto), nextPageToken: page.nextPageToken };
    },
    generateSuggestions: async (request, ctx) => {
      const made = await suggestions.generateSuggestions(
        db,
        callerOf(ctx),
        { entityId: request.entityId.toLowerCase(), max: request.maxSuggestions || 10, minScore: request.minScore ?? 0.5 },
        { findSimilar: searchSimilar(state, ctx, deps.log), findCoUsed: analyticsCoUsed(state, ctx, deps.log) },
      );
      return {
        suggestions: made.suggestions.map(suggestionToProto),
        unavailableSources: [
          ...(made.semanticUnavailable === undefined ? [] : [SuggestionSource.SIMILARITY]),
          ...(made.coUsageUnavailable === undefined ? [] : [SuggestionSource.CO_USAGE]),
        ],
      };
    },
    acceptSuggestion: async (request, ctx) => {
      const accepted = await suggestions.acceptSuggestion(
        db,
        callerOf(ctx),
        {
          id: request.suggestionId.toLowerCase(),
          type: request.relationshipType === RelationshipType.UNSPECIFIED ? undefined : relationshipTypeOf(request.relationshipType),
          strength: request.strength,
        },
        actorOf(ctx),
      );
      return { suggestion: suggestionToProto(accepted.suggestion), relationship: relationshipToProto(accepted.relationship) };
    },
    dismissSuggestion: async (request, ctx) =>
      suggestionToProto(await suggestions.dismissSuggestion(db, callerOf(ctx), { id: request.suggestionId.toLowerCase(), reason: request.reason }, actorOf(ctx))),
  };
}
