import { callerOf, dbTimeFromTimestamp, formatCursor, timestampFromDb, type LogEvent, type ServiceDeps, type ServiceHandlers } from "@promptcraft/platform";
import type { AnalyticsService } from "@promptcraft/proto/promptcraft/analytics/v1/analytics_service_pb";
import { ActorType } from "@promptcraft/proto/promptcraft/analytics/v1/resources_pb";
import type { AnalyticsConfig } from "../config.js";
import * as audit from "../domain/audit.js";

const INT32_MAX = 2n ** 31n - 1n;

/** An event of the log as the API's AuditEvent. */
export function auditEventToProto(e: LogEvent) {
  const cursor = formatCursor({ transactionId: e.transactionId, id: e.id });
  return {
    id: String(e.id),
    tenantId: e.tenantId,
    service: audit.serviceOf(e),
    aggregateType: e.aggregateType,
    aggregateId: e.aggregateId ?? "",
    aggregateVersion: e.aggregateVersion !== null && e.aggregateVersion <= INT32_MAX ? Number(e.aggregateVersion) : undefined,
    eventType: e.eventType,
    payload: e.payload as never,
    actorType: ActorType[audit.actorTypeName(e.actorType).slice("ACTOR_TYPE_".length) as keyof typeof ActorType],
    actorId: e.actorId ?? "",
    requestId: e.requestId ?? "",
    occurTime: timestampFromDb(e.occurredAt),
    transactionId: String(e.transactionId),
    cursor,
  };
}

/** AnalyticsService audit log: ListAuditEvents, TailAuditEvents (server streaming). */
export function auditHandlers(deps: ServiceDeps<AnalyticsConfig>): ServiceHandlers<typeof AnalyticsService> {
  const db = deps.db;
  return {
    listAuditEvents: async (request, ctx) => {
      const page = await audit.listAuditEvents(db, callerOf(ctx), request);
      return { auditEvents: page.events.map(auditEventToProto), nextPageToken: page.nextPageToken };
    },
    tailAuditEvents: async function* (request, ctx) {
      const items = audit.tailAuditEvents(
        db,
        callerOf(ctx),
        {
          filter: request.filter,
          startCursor: request.startCursor,
          startTime: request.startTime ? dbTimeFromTimestamp(request.startTime, "start_time") : undefined,
          heartbeatMs: request.heartbeatInterval ? Number(request.heartbeatInterval.seconds) * 1000 + Math.floor(request.heartbeatInterval.nanos / 1e6) : 15_000,
          pollIntervalMs: deps.config.AUDIT_TAIL_POLL_MS,
        },
        deps.stopping,
      );
      for await (const item of items) {
        yield "event" in item
          ? { item: { case: "event" as const, value: auditEventToProto(item.event) } }
          : { item: { case: "heartbeat" as const, value: { cursor: formatCursor(item.heartbeat), serverTime: timestampFromDb(new Date()) } } };
      }
    },
  };
}
