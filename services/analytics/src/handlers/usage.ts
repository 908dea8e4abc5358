import { callerOf, dbTimeFromTimestamp, type ServiceHandlers } from "@promptcraft/platform";
import type { AnalyticsService } from "@promptcraft/proto/promptcraft/analytics/v1/analytics_service_pb";
import { UsageKind, type UsageEvent } from "@promptcraft/proto/promptcraft/analytics/v1/resources_pb";
import type { IncomingUsageEvent, UsageIngest } from "../domain/usage.js";

/** `usage_event.kind` of each contract kind (validated as defined and not unspecified by the proto rules). */
export const KIND_NAMES: Record<UsageKind, string> = {
  [UsageKind.UNSPECIFIED]: "unspecified",
  [UsageKind.VIEW]: "view",
  [UsageKind.RENDER]: "render",
  [UsageKind.EXECUTE]: "execute",
  [UsageKind.SEARCH]: "search",
  [UsageKind.LLM_CALL]: "llm_call",
  [UsageKind.EMBEDDING]: "embedding",
  [UsageKind.RESOLVE]: "resolve",
};

/** A request's UsageEvent as the domain takes it; `field` is its path, for bad times. */
export function incomingEvent(e: UsageEvent, field: string): IncomingUsageEvent {
  return {
    id: e.id,
    tenantId: e.tenantId,
    userId: e.userId,
    entityId: e.entityId,
    entityVersion: e.entityVersion,
    label: e.label,
    kind: KIND_NAMES[e.kind],
    model: e.model,
    tokensIn: e.inputTokens,
    tokensOut: e.outputTokens,
    costMicros: e.costMicros,
    latencyMs: e.latency ? Math.round(Number(e.latency.seconds) * 1000 + e.latency.nanos / 1e6) : null,
    // Required and present (the proto rules ran first).
    occurredAt: dbTimeFromTimestamp(e.occurTime!, `${field}.occur_time`),
    metadata: e.metadata,
    requestId: e.requestId,
  };
}

const incomingAll = (events: UsageEvent[]) => events.map((e, i) => incomingEvent(e, `events[${i}]`));

/**
 * AnalyticsService usage ingest: StreamUsageEvents (each message checked and committed as it
 * arrives; one response with the counts when the client closes) and IngestUsageEvents (one atomic
 * batch). Rules in domain/usage.ts. Both accept the service credential (routes.ts).
 */
export function usageHandlers(ingest: UsageIngest): ServiceHandlers<typeof AnalyticsService> {
  return {
    streamUsageEvents: async (requests, ctx) => {
      const caller = callerOf(ctx);
      let accepted = 0;
      let duplicates = 0;
      let messages = 0;
      for await (const request of requests) {
        messages++;
        const result = await ingest.ingest(caller, incomingAll(request.events), ctx.signal);
        accepted += result.accepted;
        duplicates += result.duplicateIds.length;
      }
      return { acceptedCount: BigInt(accepted), duplicateCount: BigInt(duplicates), messageCount: BigInt(messages) };
    },
    ingestUsageEvents: async (request, ctx) => {
      const result = await ingest.ingest(callerOf(ctx), incomingAll(request.events), ctx.signal);
      return { acceptedCount: BigInt(result.accepted), duplicateCount: BigInt(result.duplicateIds.length), duplicateEventIds: result.duplicateIds };
    },
  };
}
