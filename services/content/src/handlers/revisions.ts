import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { actorOf, callerOf, type ServiceDeps, type ServiceHandlers } from "@promptcraft/platform";
import type { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { ChangeType, DiffLineKind } from "@promptcraft/proto/promptcraft/content/v1/resources_pb";
import type { ContentConfig } from "../config.js";
import type { ChangeKind } from "../domain/field-diff.js";
import type { LineKind } from "../domain/line-diff.js";
import * as revisions from "../domain/revisions.js";
import { entityToProto, isFullView } from "./entities.js";

const CHANGE_TO_PROTO: Record<ChangeKind, ChangeType> = { added: ChangeType.ADDED, removed: ChangeType.REMOVED, modified: ChangeType.MODIFIED };
const LINE_TO_PROTO: Record<LineKind, DiffLineKind> = { context: DiffLineKind.CONTEXT, added: DiffLineKind.ADDED, removed: DiffLineKind.REMOVED };

function jsonValue(value: unknown) {
  return value === undefined ? undefined : fromJson(ValueSchema, value as JsonValue);
}

/** ContentService revisions: ListEntityRevisions, RollbackEntity, DiffEntityRevisions. */
export function revisionHandlers(deps: ServiceDeps<ContentConfig>): ServiceHandlers<typeof ContentService> {
  const db = deps.db;
  return {
    listEntityRevisions: async (request, ctx) => {
      const page = await revisions.listRevisions(db, callerOf(ctx), request.entityId, {
        pageSize: request.pageSize,
        pageToken: request.pageToken,
        full: isFullView(request.view, "basic"),
      });
      return { revisions: page.revisions.map((v) => entityToProto(v)), nextPageToken: page.nextPageToken };
    },
    rollbackEntity: async (request, ctx) =>
      entityToProto(await revisions.rollbackEntity(db, callerOf(ctx), request.entityId, request.version, request.etag, { message: request.commitMessage, requestId: request.requestId }, actorOf(ctx))),
    diffEntityRevisions: async (request, ctx) => {
      const diff = await revisions.diffRevisions(db, callerOf(ctx), request.entityId, request.baseVersion, request.targetVersion, request.contextLines ?? 3);
      return {
        entityId: request.entityId,
        baseVersion: diff.baseVersion,
        targetVersion: diff.targetVersion,
        identical: diff.identical,
        changes: diff.changes.map((c) => ({ path: c.path, changeType: CHANGE_TO_PROTO[c.kind], baseValue: jsonValue(c.base), targetValue: jsonValue(c.target) })),
        textDiffs: diff.textDiffs.map((t) => ({
          path: t.path,
          unified: t.unified,
          hunks: t.hunks.map((h) => ({ ...h, lines: h.lines.map((l) => ({ kind: LINE_TO_PROTO[l.kind], text: l.text })) })),
        })),
      };
    },
  };
}
