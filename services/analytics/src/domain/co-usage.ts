import { withTenant, type Knex } from "@promptcraft/db";
import { NotFoundError, type CallerContext } from "@promptcraft/platform";
import { coUsedEntities } from "../store/co-usage.js";
import type { ContentDirectory } from "./entity-stats.js";

/**
 * Co-usage (GetEntityCoUsage): the entities used in the same requests as one entity, for graph's
 * suggestions and for anyone asking "what is this prompt used with?". Content decides what the
 * caller may see: the entity itself (NOT_FOUND otherwise) and each entity listed.
 */

const DAY_MS = 86_400_000;
export const DEFAULT_CO_USAGE_DAYS = 30;
export const DEFAULT_CO_USED_ENTITIES = 20;
/** Entities read beyond the answer's size, so that leaving out those the caller may not view still fills it. */
const OVERFETCH = 3;

export interface EntityCoUsage {
  entityId: string;
  requestCount: number;
  windowStart: Date;
  entities: { entityId: string; sharedRequests: number; lastSharedAt: Date }[];
}

/** The entities most often used in the same requests as `entityId` over the last `days` days (0: the defaults). */
export async function getEntityCoUsage(
  db: Knex,
  content: ContentDirectory,
  caller: CallerContext,
  q: { entityId: string; days: number; maxEntities: number },
  now: Date = new Date(),
): Promise<EntityCoUsage> {
  if ((await content.getEntity(q.entityId)) === null) throw new NotFoundError("entity not found", { metadata: { resource_type: "entity" } });
  const max = q.maxEntities > 0 ? q.maxEntities : DEFAULT_CO_USED_ENTITIES;
  const windowStart = new Date(now.getTime() - (q.days > 0 ? q.days : DEFAULT_CO_USAGE_DAYS) * DAY_MS);
  const found = await withTenant(db, { service: "analytics", tenantId: caller.tenantId, userId: caller.userId, signal: caller.signal }, (trx) =>
    coUsedEntities(trx, caller.tenantId, q.entityId, windowStart, max * OVERFETCH),
  );
  const visible = found.entities.length > 0 ? await content.getEntities(found.entities.map((e) => e.entityId)) : new Map<string, unknown>();
  return {
    entityId: q.entityId,
    requestCount: found.requestCount,
    windowStart,
    entities: found.entities.filter((e) => visible.has(e.entityId)).slice(0, max),
  };
}
