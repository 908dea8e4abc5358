import type { MessageInitShape } from "@bufbuild/protobuf";
import { actorOf, callerOf, dbTimeFromTimestamp, principalName, timestampFromDb, type ServiceDeps, type ServiceHandlers } from "@promptcraft/platform";
import type { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { LabelEventType, type LabelEventSchema, type LabelSchema } from "@promptcraft/proto/promptcraft/content/v1/resources_pb";
import type { ContentConfig } from "../config.js";
import * as labels from "../domain/labels.js";

const EVENT_TYPE_TO_PROTO: Record<labels.LabelEventRow["event_type"], LabelEventType> = {
  set: LabelEventType.SET,
  moved: LabelEventType.MOVED,
  removed: LabelEventType.REMOVED,
};

/** A label row as the contract's Label. */
export function labelToProto(entityId: string, row: labels.LabelRow): MessageInitShape<typeof LabelSchema> {
  return {
    entityId,
    name: row.label,
    version: row.version,
    protected: row.protected,
    implicit: row.implicit,
    updateTime: timestampFromDb(row.valid_from),
    updaterId: principalName(row.moved_by, row.moved_by_api_key_id),
  };
}

function labelEventToProto(row: labels.LabelEventRow): MessageInitShape<typeof LabelEventSchema> {
  return {
    entityId: row.entity_id,
    label: row.label,
    type: EVENT_TYPE_TO_PROTO[row.event_type],
    fromVersion: row.from_version ?? undefined,
    toVersion: row.to_version ?? undefined,
    actorId: row.actor_type === "api_key" ? principalName(null, row.actor_id) : (row.actor_id ?? ""),
    reason: row.reason,
    requestId: row.request_id ?? "",
    eventTime: timestampFromDb(row.occurred_at),
  };
}

/** ContentService labels: SetLabel, RemoveLabel, ListLabels, ListLabelHistory. */
export function labelHandlers(deps: ServiceDeps<ContentConfig>): ServiceHandlers<typeof ContentService> {
  const db = deps.db;
  return {
    setLabel: async (request, ctx) => {
      const row = await labels.setLabel(
        db,
        callerOf(ctx),
        {
          entityId: request.entityId,
          label: request.label,
          version: request.version,
          expectedVersion: request.expectedVersion,
          reason: request.reason,
          requestId: request.requestId,
        },
        actorOf(ctx),
      );
      return labelToProto(request.entityId, row);
    },
    removeLabel: async (request, ctx) => {
      await labels.removeLabel(
        db,
        callerOf(ctx),
        { entityId: request.entityId, label: request.label, expectedVersion: request.expectedVersion, reason: request.reason },
        actorOf(ctx),
      );
      return {};
    },
    listLabels: async (request, ctx) => {
      const page = await labels.listLabels(db, callerOf(ctx), {
        entityId: request.entityId,
        asOf: request.asOfTime ? dbTimeFromTimestamp(request.asOfTime, "as_of_time") : undefined,
        pageSize: request.pageSize,
        pageToken: request.pageToken,
      });
      return { labels: page.labels.map((l) => labelToProto(request.entityId, l)), nextPageToken: page.nextPageToken };
    },
    listLabelHistory: async (request, ctx) => {
      const page = await labels.listLabelHistory(db, callerOf(ctx), {
        entityId: request.entityId,
        label: request.label,
        pageSize: request.pageSize,
        pageToken: request.pageToken,
      });
      return { events: page.events.map(labelEventToProto), nextPageToken: page.nextPageToken };
    },
  };
}
