import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createServiceClient, Http2SessionManager, type CallOptions, type Client } from "@promptcraft/client";
import { AppError, dependencyUnavailable, invertEnumMap, NotFoundError, PermissionDeniedError, UnauthenticatedError } from "@promptcraft/platform";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { EntityType, EntityView, LabelEventType, type Entity } from "@promptcraft/proto/promptcraft/content/v1/resources_pb";
import type { ContentDirectory, EntityInfo, LabelChange, PeerCall } from "../domain/entity-stats.js";

/**
 * The content service over its gRPC contract (`@promptcraft/client`), as the domain's
 * {@link ContentDirectory}: every call carries the caller's own `authorization`, so content
 * decides what the caller may see; analytics never reads content's tables.
 */

const TYPE_NAMES: Partial<Record<EntityType, string>> = invertEnumMap({ context: EntityType.CONTEXT, template: EntityType.TEMPLATE, workflow: EntityType.WORKFLOW, library: EntityType.LIBRARY });

const CHANGE_TYPES: Partial<Record<LabelEventType, LabelChange["type"]>> = {
  [LabelEventType.SET]: "set",
  [LabelEventType.MOVED]: "moved",
  [LabelEventType.REMOVED]: "removed",
};

/** Deadline of one call to content: a read of one entity or one page. */
const CALL_TIMEOUT_MS = 5000;

function entityInfo(e: Entity): EntityInfo {
  return { id: e.id, type: TYPE_NAMES[e.type] ?? "", title: e.title, currentVersion: e.currentVersion };
}

/**
 * What an error of content means to analytics: NOT_FOUND is an answer (the caller may not view
 * the entity); the caller's own credential problems stay theirs; anything else means content
 * cannot answer now: UNAVAILABLE (DEPENDENCY_UNAVAILABLE, RetryInfo).
 */
function peerError(err: unknown): Error {
  if (err instanceof AppError) return err;
  const c = ConnectError.from(err);
  if (c.code === Code.Unauthenticated) return new UnauthenticatedError(c.rawMessage, { cause: err });
  if (c.code === Code.PermissionDenied) return new PermissionDeniedError(c.rawMessage, { cause: err });
  return dependencyUnavailable("content", `the content service cannot answer right now (${Code[c.code]})`, err);
}

export class ContentPeer implements ContentDirectory {
  private readonly sessions: Http2SessionManager;
  private readonly client: Client<typeof ContentService>;

  constructor(contentUrl: string) {
    // Calls follow the users' requests: let the HTTP/2 connection go when idle, and close it on shutdown.
    this.sessions = new Http2SessionManager(contentUrl, { idleConnectionTimeoutMs: 30_000 });
    this.client = createServiceClient(ContentService, contentUrl, { sessionManager: this.sessions, timeoutMs: CALL_TIMEOUT_MS });
  }

  private options(call: PeerCall): CallOptions {
    return { signal: call.signal, ...(call.authorization === undefined ? {} : { headers: { authorization: call.authorization } }) };
  }

  async getEntity(call: PeerCall, entityId: string): Promise<EntityInfo | null> {
    try {
      return entityInfo(await this.client.getEntity({ entityId, view: EntityView.BASIC }, this.options(call)));
    } catch (err) {
      if (ConnectError.from(err).code === Code.NotFound) return null;
      throw peerError(err);
    }
  }

  async getEntities(call: PeerCall, entityIds: readonly string[]): Promise<Map<string, EntityInfo>> {
    try {
      const r = await this.client.batchGetEntities({ entityIds: [...entityIds], view: EntityView.BASIC, showDeleted: true }, this.options(call));
      return new Map(r.entities.map((e) => [e.id, entityInfo(e)]));
    } catch (err) {
      throw peerError(err);
    }
  }

  async *labelHistory(call: PeerCall, entityId: string, label: string): AsyncIterable<LabelChange> {
    let pageToken = "";
    do {
      let page;
      try {
        page = await this.client.listLabelHistory({ entityId, label, pageSize: 1000, pageToken }, this.options(call));
      } catch (err) {
        const c = ConnectError.from(err);
        if (c.code === Code.NotFound) throw new NotFoundError("entity not found", { metadata: { resource_type: "entity" }, cause: err });
        throw peerError(err);
      }
      for (const e of page.events) {
        const type = CHANGE_TYPES[e.type];
        if (type === undefined || e.eventTime === undefined) continue;
        yield { type, fromVersion: e.fromVersion ?? null, toVersion: e.toVersion ?? null, actorId: e.actorId, time: timestampDate(e.eventTime) };
      }
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
  }

  close(): void {
    this.sessions.abort();
  }
}
