import { actorOf, callerOf, timestampFromDb, type ServiceDeps, type ServiceHandlers } from "@promptcraft/platform";
import type { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import type { ContentConfig } from "../config.js";
import { permissionOfRank } from "../domain/access.js";
import * as favorites from "../domain/favorites.js";
import { entityToProto, entityTypeOf } from "./entities.js";

function favoriteToProto(f: favorites.FavoriteRow) {
  return { entityId: f.entity_id, userId: f.user_id, createTime: timestampFromDb(f.created_at) };
}

/** ContentService favorites: AddFavorite, RemoveFavorite (both idempotent), ListFavorites. */
export function favoriteHandlers(deps: ServiceDeps<ContentConfig>): ServiceHandlers<typeof ContentService> {
  const db = deps.db;
  return {
    addFavorite: async (request, ctx) => favoriteToProto(await favorites.addFavorite(db, callerOf(ctx), request.entityId, actorOf(ctx))),
    removeFavorite: async (request, ctx) => {
      await favorites.removeFavorite(db, callerOf(ctx), request.entityId, actorOf(ctx));
      return {};
    },
    listFavorites: async (request, ctx) => {
      const page = await favorites.listFavorites(db, callerOf(ctx), {
        types: request.types.map(entityTypeOf),
        pageSize: request.pageSize,
        pageToken: request.pageToken,
      });
      return {
        favorites: page.favorites.map(({ favorite, entity }) => ({
          ...favoriteToProto(favorite),
          entity: entity ? entityToProto({ row: entity, permission: permissionOfRank(entity.permission) }) : undefined,
        })),
        nextPageToken: page.nextPageToken,
      };
    },
  };
}
