import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@promptcraft/client";
import { NotFoundError, onBehalfOf, peerUnavailable, type CallContext, type PeerClient } from "@promptcraft/platform";
import type { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { EntityType, EntityView, LabelEventType, type Entity } from "@promptcraft/proto/promptcraft/content/v1/resources_pb";
import type { ContentDirectory, EntityInfo, LabelChange } from "../domain/entity-stats.js";

/**
 * The content service over its gRPC contract as the domain's {@link ContentDirectory}, on behalf of
 * the caller of `ctx` (`onBehalfOf`: the caller's authorization, request id, trace, a deadline within
 * the caller's): content decides what the caller may see; analytics never reads content's tables.
 */

/** How long one call to content (an entity, a page of entities or of label history) may take. */
const CONTENT_TIMEOUT_MS = 3000;

/** Content's entity types by their stored names (the read model `entity_stats` holds these). */
export const ENTITY_TYPES: Record<string, EntityType> = {
  context: EntityType.CONTEXT,
  template: EntityType.TEMPLATE,
  workflow: EntityType.WORKFLOW,
  library: EntityType.LIBRARY,
};
export const ENTITY_TYPE_NAMES = new Map(Object.entries(ENTITY_TYPES).map(([name, t]) => [t, name]));

const CHANGE_TYPES: Partial<Record<LabelEventType, LabelChange["type"]>> = {
  [LabelEventType.SET]: "set",
  [LabelEventType.MOVED]: "moved",
  [LabelEventType.REMOVED]: "removed",
};

const entityInfo = (e: Entity): EntityInfo => ({ id: e.id, type: ENTITY_TYPE_NAMES.get(e.type) ?? "", title: e.title, currentVersion: e.currentVersion });

const notFound = (err: unknown) => ConnectError.from(err).code === Code.NotFound;

export function contentDirectory(content: PeerClient<typeof ContentService>, ctx: CallContext): ContentDirectory {
  /**
   * A failed call to content: UNAVAILABLE naming content when it is down, slow or broken; its other
   * answers (the caller's credentials refused…) reach the caller as content gave them.
   */
  const contentFailure = (err: unknown) => peerUnavailable("content", err, ctx.signal) ?? err;
  return {
    async getEntity(entityId) {
      try {
        return entityInfo(await content.client.getEntity({ entityId, view: EntityView.BASIC }, onBehalfOf(ctx, CONTENT_TIMEOUT_MS)));
      } catch (err) {
        if (notFound(err)) return null;
        throw contentFailure(err);
      }
    },
    async getEntities(entityIds) {
      try {
        const r = await content.client.batchGetEntities({ entityIds: [...entityIds], view: EntityView.BASIC, showDeleted: true }, onBehalfOf(ctx, CONTENT_TIMEOUT_MS));
        return new Map(r.entities.map((e) => [e.id, entityInfo(e)]));
      } catch (err) {
        throw contentFailure(err);
      }
    },
    async *labelHistory(entityId, label) {
      let pageToken = "";
      do {
        let page;
        try {
          page = await content.client.listLabelHistory({ entityId, label, pageSize: 1000, pageToken }, onBehalfOf(ctx, CONTENT_TIMEOUT_MS));
        } catch (err) {
          if (notFound(err)) throw new NotFoundError("entity not found", { metadata: { resource_type: "entity" }, cause: err });
          throw contentFailure(err);
        }
        for (const e of page.events) {
          const type = CHANGE_TYPES[e.type];
          if (type === undefined || e.eventTime === undefined) continue;
          yield { type, fromVersion: e.fromVersion ?? null, toVersion: e.toVersion ?? null, actorId: e.actorId, time: timestampDate(e.eventTime) };
        }
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
    },
  };
}
