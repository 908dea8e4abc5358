import { appendEvents, withTenant, type Knex } from "@promptcraft/db";
import { CURSOR_TIMESTAMP, CURSOR_UUID, decodePageCursor, pageOf, pageSizeOf, type Actor } from "@promptcraft/platform";
import { findVisibleEntities, type EntityVersionRow } from "../store/entities.js";
import * as store from "../store/favorites.js";
import { requireUser, type Caller } from "./access.js";
import { scopeOf } from "./entities.js";
import { entityFor } from "./shares.js";

/**
 * Favorites: a user's bookmarks. Adding needs view on the entity; adding twice returns the existing
 * favorite and removing a missing one succeeds, and only a real change appends an event. Removing
 * needs no access (one may always drop one's own bookmark, also of an entity one can no longer see).
 * Favorites belong to users: a credential acting for no user (an API key) gets PERMISSION_DENIED.
 */

export type FavoriteRow = store.FavoriteRow;

function favoriteEvent(caller: Caller, entityId: string, eventType: string, actor: Actor) {
  return { tenantId: caller.tenantId, aggregateType: "entity", aggregateId: entityId, eventType, payload: { user_id: caller.userId }, ...actor };
}

/** Adds the entity to the caller's favorites (idempotent). */
export async function addFavorite(db: Knex, caller: Caller, entityId: string, actor: Actor): Promise<FavoriteRow> {
  const userId = requireUser(caller, "favorites");
  return withTenant(db, scopeOf(caller), async (trx) => {
    await entityFor(trx, caller, entityId, "view", "favoriting an entity");
    const { favorite, added } = await store.addFavorite(trx, caller.tenantId, userId, entityId);
    if (added) await appendEvents(trx, [favoriteEvent(caller, entityId, "content.favorite.added", actor)]);
    return favorite;
  });
}

/** Removes the entity from the caller's favorites (idempotent). */
export async function removeFavorite(db: Knex, caller: Caller, entityId: string, actor: Actor): Promise<void> {
  const userId = requireUser(caller, "favorites");
  await withTenant(db, scopeOf(caller), async (trx) => {
    if (await store.removeFavorite(trx, caller.tenantId, userId, entityId)) {
      await appendEvents(trx, [favoriteEvent(caller, entityId, "content.favorite.removed", actor)]);
    }
  });
}

/**
 * A page of the caller's favorites, newest first, of entities not deleted that the caller may still
 * view, each with its entity (basic view, current version), read in the same transaction.
 */
export async function listFavorites(
  db: Knex,
  caller: Caller,
  q: { types: string[]; pageSize: number; pageToken: string },
): Promise<{ favorites: { favorite: FavoriteRow; entity: EntityVersionRow | undefined }[]; nextPageToken: string }> {
  const userId = requireUser(caller, "favorites");
  const params = { t: caller.tenantId, u: userId, y: [...q.types].sort() };
  const cursor = decodePageCursor(q.pageToken, params, { createdAt: CURSOR_TIMESTAMP, entityId: CURSOR_UUID });
  const limit = pageSizeOf(q.pageSize);
  return withTenant(db, scopeOf(caller), async (trx) => {
    const rows = await store.listFavorites(trx, { ...caller, userId }, { types: q.types, after: cursor ?? null, limit: limit + 1 });
    const { page, nextPageToken } = pageOf(rows, limit, params, (last) => ({ createdAt: last.created_at.toISOString(), entityId: last.entity_id }));
    const entities = new Map(
      (await findVisibleEntities(
        trx,
        caller,
        page.map((f) => f.entity_id),
        { full: false, showDeleted: false },
      )).map((e) => [e.id, e]),
    );
    return { favorites: page.map((favorite) => ({ favorite, entity: entities.get(favorite.entity_id) })), nextPageToken };
  });
}
