import { type Knex, sqlTime } from "@promptcraft/db";
import { principalColumns, type Principal } from "../domain/access.js";
import type { EntityRef } from "../domain/names.js";

/**
 * Entity names: `entity.name` (the current name, unique per tenant among live entities) and its
 * history `entity_name` (periods in which an entity held a name: opened on create, undelete and
 * rename, closed on delete and rename). Callers of the changes hold the entity row lock.
 */

/** One period of a name, as ListEntityNameHistory shows it. */
export interface EntityNameRow {
  entity_id: string;
  name: string;
  set_by: string | null;
  set_by_api_key_id: string | null;
  valid_from: Date;
  valid_to: Date | null;
  /** `valid_from` as UTC text with microseconds (the page cursor: exact, unlike a Date). */
  sort_key: string;
}

/**
 * The entity id a reference names, as a value for a query's bindings: the id itself, or a subquery
 * resolving the name in the caller's tenant — the live entity holding it now, or (with `time`) the
 * entity that held it then (the history's exclusion constraint makes that at most one; its GiST
 * index answers the lookup). A name nobody holds yields null, which matches no entity.
 */
export function entityIdOf(knex: Knex, tenantId: string, ref: EntityRef, time?: Date): string | Knex.Raw {
  if ("id" in ref) return ref.id;
  return time
    ? knex.raw(
        "(select n.entity_id from entity_name n where n.tenant_id = ?::uuid and n.name = ? and tstzrange(n.valid_from, n.valid_to) @> ?::timestamptz)",
        [tenantId, ref.name, sqlTime(time)],
      )
    : knex.raw("(select n.id from entity n where n.tenant_id = ?::uuid and n.name = ? and n.deleted_at is null)", [tenantId, ref.name]);
}

/** The live names of the tenant a name derived from `base` could collide with (`base`, `base-2`…, cut to fit). */
export async function namesLike(trx: Knex.Transaction, tenantId: string, base: string): Promise<Set<string>> {
  // A candidate keeps at least the first 57 characters of its base (a suffix has at most 7).
  const { rows } = await trx.raw<{ rows: { name: string }[] }>("select name from entity where tenant_id = ? and deleted_at is null and name like ?", [
    tenantId,
    `${base.slice(0, 57)}%`,
  ]);
  return new Set(rows.map((r) => r.name));
}

/** The name the entity was created with (its first period), for comparing a create's retry with the first call. */
export async function nameAtCreation(trx: Knex.Transaction, tenantId: string, entityId: string): Promise<string | undefined> {
  const { rows } = await trx.raw<{ rows: { name: string }[] }>(
    "select name from entity_name where tenant_id = ? and entity_id = ? order by valid_from limit 1",
    [tenantId, entityId],
  );
  return rows[0]?.name;
}

/** The live entity of the tenant holding `name`, if any. */
export async function nameHolder(trx: Knex.Transaction, tenantId: string, name: string): Promise<string | undefined> {
  const { rows } = await trx.raw<{ rows: { id: string }[] }>("select id from entity where tenant_id = ? and name = ? and deleted_at is null", [tenantId, name]);
  return rows[0]?.id;
}

/**
 * The instant of a name change of an entity: now, but strictly after its open period started (two
 * changes within one clock tick would otherwise give an empty period).
 */
const CHANGE_TIME = `greatest(clock_timestamp(), coalesce((select c.valid_from from entity_name c
  where c.tenant_id = ? and c.entity_id = ? and c.valid_to is null), '-infinity') + interval '1 microsecond')`;

/** Ends the entity's open name period (delete, rename); returns the instant, or undefined if none was open. */
export async function closeEntityName(trx: Knex.Transaction, tenantId: string, entityId: string): Promise<Date | undefined> {
  const { rows } = await trx.raw<{ rows: { valid_to: Date }[] }>(
    `update entity_name n set valid_to = ${CHANGE_TIME}
     where n.tenant_id = ? and n.entity_id = ? and n.valid_to is null
     returning n.valid_to`,
    [tenantId, entityId, tenantId, entityId],
  );
  return rows[0]?.valid_to;
}

/**
 * Opens a name period for the entity's current `entity.name` (undelete, rename), from `from` (the
 * instant the previous one closed) or now.
 */
export async function openEntityName(trx: Knex.Transaction, n: { tenantId: string; entityId: string; by: Principal; from?: Date }): Promise<void> {
  await trx.raw(
    `insert into entity_name (tenant_id, entity_id, name, set_by, set_by_api_key_id, valid_from)
     select e.tenant_id, e.id, e.name, ?, ?, coalesce(?::timestamptz, clock_timestamp())
     from entity e where e.tenant_id = ? and e.id = ?`,
    [...principalColumns(n.by), n.from ? sqlTime(n.from) : null, n.tenantId, n.entityId],
  );
}

/**
 * Gives the entity another name: sets `entity.name` (the unique index refuses a name another live
 * entity holds) and bumps its etag; for a live entity, closes its name period and opens the next
 * at the same instant. A deleted entity's name changes without history (it holds none until undeleted).
 */
export async function renameEntity(
  trx: Knex.Transaction,
  r: { tenantId: string; entityId: string; name: string; by: Principal; live: boolean },
): Promise<{ row_version: string }> {
  const { rows } = await trx.raw<{ rows: { row_version: string }[] }>(
    "update entity set name = ?, row_version = row_version + 1 where tenant_id = ? and id = ? returning row_version::text as row_version",
    [r.name, r.tenantId, r.entityId],
  );
  if (r.live) {
    const closed = await closeEntityName(trx, r.tenantId, r.entityId);
    await openEntityName(trx, { tenantId: r.tenantId, entityId: r.entityId, by: r.by, from: closed });
  }
  return rows[0]!;
}

/** A page of the entity's name periods, newest first, starting before `before` (a `sort_key`) when given. */
export async function listEntityNames(
  trx: Knex.Transaction,
  tenantId: string,
  entityId: string,
  page: { before?: string; limit: number },
): Promise<EntityNameRow[]> {
  const { rows } = await trx.raw<{ rows: EntityNameRow[] }>(
    `select entity_id, name, set_by, set_by_api_key_id, valid_from, valid_to,
            to_char(valid_from at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as sort_key
     from entity_name
     where tenant_id = ? and entity_id = ? and valid_from < coalesce(?::timestamptz, 'infinity')
     order by valid_from desc
     limit ?`,
    [tenantId, entityId, page.before ?? null, page.limit],
  );
  return rows;
}
