import { selectRows, type Knex, type Reader } from "@promptcraft/db";
import type { Caller } from "../domain/access.js";
import { permissionRankSql } from "./access.js";

/** Favorites: one row per (user, entity); adding twice or removing a missing one changes nothing. */

export interface FavoriteRow {
  entity_id: string;
  user_id: string;
  created_at: Date;
}

const COLUMNS = "entity_id, user_id, created_at";

/** Adds the favorite; `added` is false when it existed (then the existing row is returned). */
export async function addFavorite(
  trx: Knex.Transaction,
  tenantId: string,
  userId: string,
  entityId: string,
): Promise<{ favorite: FavoriteRow; added: boolean }> {
  const inserted = await trx.raw<{ rows: FavoriteRow[] }>(
    `insert into favorite (tenant_id, user_id, entity_id) values (?, ?, ?) on conflict do nothing returning ${COLUMNS}`,
    [tenantId, userId, entityId],
  );
  if (inserted.rows[0]) return { favorite: inserted.rows[0], added: true };
  const { rows } = await trx.raw<{ rows: FavoriteRow[] }>(`select ${COLUMNS} from favorite where tenant_id = ? and user_id = ? and entity_id = ?`, [
    tenantId,
    userId,
    entityId,
  ]);
  return { favorite: rows[0]!, added: false };
}

/** Removes the favorite; false when there was none. */
export async function removeFavorite(trx: Knex.Transaction, tenantId: string, userId: string, entityId: string): Promise<boolean> {
  const { rows } = await trx.raw<{ rows: unknown[] }>("delete from favorite where tenant_id = ? and user_id = ? and entity_id = ? returning 1", [
    tenantId,
    userId,
    entityId,
  ]);
  return rows.length > 0;
}

/**
 * A page of the user's favorites, newest first, of entities that are not deleted, are of one of
 * `types` (all when empty) and that the caller may still view: the access rule is part of the
 * query, so a page is never cut short by filtering afterwards.
 */
export async function listFavorites(
  trx: Reader,
  caller: Caller & { userId: string },
  q: { types: string[]; after: { createdAt: string; entityId: string } | null; limit: number },
): Promise<FavoriteRow[]> {
  const rows = await selectRows<FavoriteRow>(trx, 
    `select f.entity_id, f.user_id, f.created_at
     from favorite f
     join entity e on e.tenant_id = f.tenant_id and e.id = f.entity_id and e.deleted_at is null
     join entity_version cv on cv.tenant_id = e.tenant_id and cv.entity_id = e.id and cv.valid_to is null
     where f.tenant_id = ? and f.user_id = ?
       and (cardinality(?::text[]) = 0 or e.entity_type = any(?::text[]))
       and (?::timestamptz is null or (f.created_at, f.entity_id) < (?::timestamptz, ?::uuid))
       and ? >= 1
     order by f.created_at desc, f.entity_id desc
     limit ?`,
    [
      caller.tenantId,
      caller.userId,
      q.types,
      q.types,
      q.after?.createdAt ?? null,
      q.after?.createdAt ?? null,
      q.after?.entityId ?? null,
      permissionRankSql(trx, caller),
      q.limit,
    ],
  );
  return rows;
}
