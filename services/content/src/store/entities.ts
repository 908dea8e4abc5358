import { type Knex, type VersionFields, sqlTime } from "@promptcraft/db";
import { principalColumns, type Caller, type Principal } from "../domain/access.js";
import { permissionRankSql } from "./access.js";
import { VERSION_FIELD_COLUMNS, VERSION_FIELD_VALUES, versionFieldParams } from "./versions.js";

/**
 * SQL of `entity` and of reading entities as of one of their versions, always inside `withTenant`
 * for the caller's tenant (row-level security hides every other tenant's rows). Writing versions
 * is in store/versions.ts.
 */

export type EntityType = "context" | "template" | "workflow" | "library";
export type EntityStatus = VersionFields["status"];
export type Visibility = VersionFields["visibility"];

/** An entity as of one version: entity columns, that version's columns, and the caller's view of it. */
export interface EntityVersionRow {
  tenant_id: string;
  id: string;
  /** The entity's current name (not versioned; history in entity_name). */
  name: string;
  entity_type: EntityType;
  /** The owner: a user, or (`owner_api_key_id`) the API key that created the entity; exactly one is set. */
  owner_id: string | null;
  owner_api_key_id: string | null;
  current_version: number;
  row_version: string;
  created_at: Date;
  updated_at: Date;
  deleted_at: Date | null;
  purge_time: Date | null;
  version: number;
  title: string;
  description: string;
  status: EntityStatus;
  visibility: Visibility;
  /** Null in the basic view. */
  content: Record<string, unknown> | null;
  tags: string[];
  /** Null in the basic view. */
  metadata: Record<string, unknown> | null;
  commit_message: string;
  /** The version's author: a user, or (`author_api_key_id`) an API key; exactly one is set. */
  author_id: string | null;
  author_api_key_id: string | null;
  content_hash: string;
  rolled_back_from: number | null;
  valid_from: Date;
  valid_to: Date | null;
  /** Labels pointing at this version at the time read for (without the implicit `latest`). */
  labels: string[];
  favorite: boolean;
  /** The caller's permission rank (store/access.ts). */
  permission: number;
}

/** Which version of an entity to read. */
export type VersionSelector =
  | { kind: "current" }
  | { kind: "version"; version: number }
  | { kind: "as_of"; time: Date }
  | { kind: "label"; label: string; time?: Date };

function columns(full: boolean): string {
  return `e.tenant_id, e.id, e.name, e.entity_type, e.owner_id, e.owner_api_key_id, e.current_version, e.row_version::text as row_version,
    e.created_at, e.updated_at, e.deleted_at, e.purge_time,
    v.version,
    v.title, v.description, v.status, v.visibility, ${full ? "v.content, v.metadata" : "null::jsonb as content, null::jsonb as metadata"},
    v.tags, v.commit_message, v.author_id, v.author_api_key_id, v.content_hash, v.rolled_back_from, v.valid_from, v.valid_to`;
}

/** Labels pointing at `v.version` now, or at `time`. */
function labelsSql(knex: Knex, time: Date | undefined): Knex.Raw {
  return time
    ? knex.raw(
        `array(select l.label from entity_label l where l.tenant_id = v.tenant_id and l.entity_id = v.entity_id and l.version = v.version
               and l.valid_from <= ? and (l.valid_to is null or l.valid_to > ?) order by l.label)`,
        [sqlTime(time), sqlTime(time)],
      )
    : knex.raw(
        `array(select l.label from entity_label l where l.tenant_id = v.tenant_id and l.entity_id = v.entity_id and l.version = v.version
               and l.valid_to is null order by l.label)`,
      );
}

function favoriteSql(knex: Knex, caller: Caller): Knex.Raw {
  return knex.raw("exists (select 1 from favorite f where f.tenant_id = e.tenant_id and f.entity_id = e.id and f.user_id = ?::uuid)", [caller.userId ?? null]);
}

/**
 * The condition on the version row `v` of entity (`tenantId`, `entityId`) that a selector picks.
 * "As of T" is the version (label row) with the latest start at or before T, if it had not ended by
 * then: `valid_from = (select max(valid_from) … where valid_from <= T)`, which PostgreSQL answers
 * with one backward step on a btree (entity_version_as_of_idx, entity_label_pkey) however long the
 * history, then reads the row by that key. The subqueries take the ids as parameters, so they run
 * once (InitPlans).
 */
function selectorSql(knex: Knex, selector: VersionSelector, tenantId: string, entityId: string | Knex.Raw): Knex.Raw {
  switch (selector.kind) {
    case "current":
      return knex.raw("v.valid_to is null");
    case "version":
      return knex.raw("v.version = ?", [selector.version]);
    case "as_of":
      return knex.raw(
        `v.valid_from = (select max(x.valid_from) from entity_version x where x.tenant_id = ? and x.entity_id = ? and x.valid_from <= ?::timestamptz)
         and (v.valid_to is null or v.valid_to > ?::timestamptz)`,
        [tenantId, entityId, sqlTime(selector.time), sqlTime(selector.time)],
      );
    case "label":
      return selector.time
        ? knex.raw(
            `v.version = (select l.version from entity_label l
                          where l.tenant_id = ? and l.entity_id = ? and l.label = ? and (l.valid_to is null or l.valid_to > ?::timestamptz)
                            and l.valid_from = (select max(m.valid_from) from entity_label m
                                                where m.tenant_id = ? and m.entity_id = ? and m.label = ? and m.valid_from <= ?::timestamptz))`,
            [tenantId, entityId, selector.label, sqlTime(selector.time), tenantId, entityId, selector.label, sqlTime(selector.time)],
          )
        : knex.raw("v.version = (select l.version from entity_label l where l.tenant_id = ? and l.entity_id = ? and l.label = ? and l.valid_to is null)", [
            tenantId,
            entityId,
            selector.label,
          ]);
  }
}

/** The time labels are read for: the selector's time, if any. */
function readTime(selector: VersionSelector): Date | undefined {
  return selector.kind === "as_of" || selector.kind === "label" ? selector.time : undefined;
}

/**
 * The entity (deleted ones included) with the caller's permission, as of the selected version.
 * Undefined when the entity does not exist; `version` is null when it exists but the selector
 * matches no version (unknown version or label, or a time before its creation). One round trip.
 * `entityId` may be a subquery resolving a name (store/names.ts `entityIdOf`).
 */
export async function findEntityVersion(
  trx: Knex.Transaction,
  caller: Caller,
  entityId: string | Knex.Raw,
  selector: VersionSelector,
  full: boolean,
): Promise<(Omit<EntityVersionRow, "version"> & { version: number | null }) | undefined> {
  const { rows } = await trx.raw<{ rows: EntityVersionRow[] }>(
    `select ${columns(full)}, ? as labels, ? as favorite, ? as permission
     from entity e
     join entity_version cv on cv.tenant_id = e.tenant_id and cv.entity_id = e.id and cv.valid_to is null
     left join entity_version v on v.tenant_id = e.tenant_id and v.entity_id = e.id and ?
     where e.tenant_id = ? and e.id = ?`,
    [
      labelsSql(trx, readTime(selector)),
      favoriteSql(trx, caller),
      permissionRankSql(trx, caller),
      selectorSql(trx, selector, caller.tenantId, entityId),
      caller.tenantId,
      entityId,
    ],
  );
  return rows[0];
}

/** The current versions of the given entities that the caller may see (in no particular order). */
export async function findVisibleEntities(
  trx: Knex.Transaction,
  caller: Caller,
  entityIds: string[],
  options: { full: boolean; showDeleted: boolean },
): Promise<EntityVersionRow[]> {
  const { rows } = await trx.raw<{ rows: EntityVersionRow[] }>(
    `select ${columns(options.full)}, ? as labels, ? as favorite, ? as permission
     from entity e
     join entity_version v on v.tenant_id = e.tenant_id and v.entity_id = e.id and v.valid_to is null
     join entity_version cv on cv.tenant_id = e.tenant_id and cv.entity_id = e.id and cv.valid_to is null
     where e.tenant_id = ? and e.id = any(?::uuid[])${options.showDeleted ? "" : " and e.deleted_at is null"} and ? >= 1`,
    [labelsSql(trx, undefined), favoriteSql(trx, caller), permissionRankSql(trx, caller), caller.tenantId, entityIds, permissionRankSql(trx, caller)],
  );
  return rows;
}

/** Filters of ListEntities (all combine with AND). */
export interface EntityFilter {
  types: EntityType[];
  tagsAny: string[];
  tagsAll: string[];
  statuses: EntityStatus[];
  /** Only entities this user or API key owns. */
  owner: Principal | undefined;
  visibility: Visibility | undefined;
  favoritesOnly: boolean;
  titlePrefix: string;
  /** Only the entity with this name (exact); empty: any. */
  name: string;
  /** Only entities whose name starts with this; empty: any. */
  namePrefix: string;
  showDeleted: boolean;
}

/** Orderings of ListEntities: the sort key and its direction; ties broken by id in the same direction. */
export type EntityOrder = { key: "update_time" | "create_time" | "title" | "name"; desc: boolean };

const ORDER_KEY_SQL: Record<EntityOrder["key"], string> = {
  update_time: "e.updated_at",
  create_time: "e.created_at",
  title: "lower(v.title)",
  name: "e.name",
};

/** The sort key as cursor text: times in UTC with microseconds (exact, and castable back). */
function sortKeyText(key: EntityOrder["key"]): string {
  return key === "title" || key === "name" ? ORDER_KEY_SQL[key] : `to_char(${ORDER_KEY_SQL[key]} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
}

/** A page row: the entity and the text of its sort key (the next page's cursor). */
export type ListedEntityRow = EntityVersionRow & { sort_key: string };

function likePrefix(prefix: string): string {
  return `${prefix.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/**
 * A page of current versions the caller may see, filtered, in `order`, after the cursor when given.
 * The access rule is part of the WHERE clause, so paging never skips or shortens for it.
 */
export async function listEntities(
  trx: Knex.Transaction,
  caller: Caller,
  filter: EntityFilter,
  order: EntityOrder,
  page: { after?: { key: string; id: string }; limit: number; full: boolean },
): Promise<ListedEntityRow[]> {
  const where: string[] = ["e.tenant_id = ?", "? >= 1"];
  const bindings: Knex.Value[] = [caller.tenantId, permissionRankSql(trx, caller)];
  if (!filter.showDeleted) where.push("e.deleted_at is null");
  if (filter.types.length > 0) {
    where.push("e.entity_type = any(?::text[])");
    bindings.push(filter.types);
  }
  if (filter.tagsAny.length > 0) {
    where.push("v.tags && ?::text[]");
    bindings.push(filter.tagsAny);
  }
  if (filter.tagsAll.length > 0) {
    where.push("v.tags @> ?::text[]");
    bindings.push(filter.tagsAll);
  }
  if (filter.statuses.length > 0) {
    where.push("v.status = any(?::text[])");
    bindings.push(filter.statuses);
  }
  if (filter.owner) {
    where.push(filter.owner.kind === "user" ? "e.owner_id = ?::uuid" : "e.owner_api_key_id = ?::uuid");
    bindings.push(filter.owner.id);
  }
  if (filter.visibility) {
    where.push("v.visibility = ?");
    bindings.push(filter.visibility);
  }
  if (filter.favoritesOnly) {
    where.push("exists (select 1 from favorite fo where fo.tenant_id = e.tenant_id and fo.entity_id = e.id and fo.user_id = ?::uuid)");
    bindings.push(caller.userId ?? null);
  }
  if (filter.titlePrefix !== "") {
    where.push("lower(v.title) like ?");
    bindings.push(likePrefix(filter.titlePrefix));
  }
  if (filter.name !== "") {
    where.push("e.name = ?");
    bindings.push(filter.name);
  }
  if (filter.namePrefix !== "") {
    // Names are lowercase already; collation "C" lets the prefix use the (tenant_id, name) index.
    where.push("e.name like ?");
    bindings.push(likePrefix(filter.namePrefix));
  }
  const key = ORDER_KEY_SQL[order.key];
  const keyCast = order.key === "title" || order.key === "name" ? "?::text" : "?::timestamptz";
  if (page.after) {
    where.push(`(${key}, e.id) ${order.desc ? "<" : ">"} (${keyCast}, ?::uuid)`);
    bindings.push(page.after.key, page.after.id);
  }
  const dir = order.desc ? "desc" : "asc";
  const { rows } = await trx.raw<{ rows: ListedEntityRow[] }>(
    `select ${columns(page.full)}, ? as labels, ? as favorite, ? as permission, ${sortKeyText(order.key)} as sort_key
     from entity e
     join entity_version v on v.tenant_id = e.tenant_id and v.entity_id = e.id and v.valid_to is null
     join entity_version cv on cv.tenant_id = e.tenant_id and cv.entity_id = e.id and cv.valid_to is null
     where ${where.join(" and ")}
     order by ${key} ${dir}, e.id ${dir}
     limit ?`,
    [labelsSql(trx, undefined), favoriteSql(trx, caller), permissionRankSql(trx, caller), ...bindings, page.limit],
  );
  return rows;
}

/** The entity created with this request id, if any (AIP-155 retries). */
export async function findEntityIdByRequestId(trx: Knex.Transaction, tenantId: string, requestId: string): Promise<string | undefined> {
  const { rows } = await trx.raw<{ rows: { id: string }[] }>("select id from entity where tenant_id = ? and request_id = ?", [tenantId, requestId]);
  return rows[0]?.id;
}

/** Number of entities that are not deleted (the `max_entities` quota counts them). */
export async function countLiveEntities(trx: Knex.Transaction, tenantId: string): Promise<number> {
  const { rows } = await trx.raw<{ rows: { n: number }[] }>("select count(*)::int as n from entity where tenant_id = ? and deleted_at is null", [tenantId]);
  return rows[0]!.n;
}

/**
 * The tenant's `max_entities` quota (undefined = unlimited), after taking a transaction-scoped
 * advisory lock per tenant: creations of one tenant serialise, so the quota holds under
 * concurrency (the content role may read the tenant row but not lock it).
 */
export async function lockEntityQuota(trx: Knex.Transaction, tenantId: string): Promise<number | undefined> {
  await trx.raw("select pg_advisory_xact_lock(hashtextextended('promptcraft.entity_quota/' || ?, 0))", [tenantId]);
  const { rows } = await trx.raw<{ rows: { max_entities: unknown }[] }>("select quotas -> 'max_entities' as max_entities from tenant where id = ?", [tenantId]);
  const max = rows[0]?.max_entities;
  return typeof max === "number" ? max : undefined;
}

/**
 * Inserts an entity with its version 1 and its name's first period (both valid from the entity's
 * creation); undefined when the request id was used already (a concurrent retry won: read that
 * one). A name another live entity holds fails on `entity_name_key`.
 */
export async function insertEntity(
  trx: Knex.Transaction,
  e: { tenantId: string; type: EntityType; name: string; owner: Principal; requestId: string | null; fields: VersionFields; hash: string; commitMessage: string },
): Promise<string | undefined> {
  const { rows } = await trx.raw<{ rows: { id: string }[] }>(
    `with e as (
       insert into entity (tenant_id, entity_type, name, owner_id, owner_api_key_id, current_version, request_id)
       values (?, ?, ?, ?, ?, 1, ?)
       on conflict (tenant_id, request_id) where request_id is not null do nothing
       returning tenant_id, id, name, owner_id, owner_api_key_id, created_at
     ), v as (
       insert into entity_version (tenant_id, entity_id, version, previous_version, ${VERSION_FIELD_COLUMNS}, valid_from)
       select e.tenant_id, e.id, 1, null, ${VERSION_FIELD_VALUES}, e.created_at
       from e
     ), n as (
       insert into entity_name (tenant_id, entity_id, name, set_by, set_by_api_key_id, valid_from)
       select e.tenant_id, e.id, e.name, e.owner_id, e.owner_api_key_id, e.created_at
       from e
     )
     select id from e`,
    [e.tenantId, e.type, e.name, ...principalColumns(e.owner), e.requestId, ...versionFieldParams({ ...e, author: e.owner })],
  );
  return rows[0]?.id;
}

/** Soft-deletes (`purgeAfterMs` from now) or restores an entity; bumps its etag. */
export async function setDeleted(
  trx: Knex.Transaction,
  tenantId: string,
  id: string,
  change: { deletedBy: string | null; purgeAfterMs: number } | null,
): Promise<void> {
  if (change) {
    await trx.raw(
      `update entity set deleted_at = now(), deleted_by = ?, purge_time = now() + ? * interval '1 millisecond', row_version = row_version + 1
       where tenant_id = ? and id = ?`,
      [change.deletedBy, change.purgeAfterMs, tenantId, id],
    );
  } else {
    await trx.raw(
      "update entity set deleted_at = null, deleted_by = null, purge_time = null, row_version = row_version + 1 where tenant_id = ? and id = ?",
      [tenantId, id],
    );
  }
}

/** Deletes an entity for good; its versions, labels, shares and favorites go with it (cascade). */
export async function purgeEntity(trx: Knex.Transaction, tenantId: string, id: string): Promise<void> {
  await trx.raw("delete from entity where tenant_id = ? and id = ?", [tenantId, id]);
}

/** A page of an entity's versions, newest first, before `beforeVersion` when given (labels: where they point now). */
export async function listEntityVersions(
  trx: Knex.Transaction,
  caller: Caller,
  entityId: string,
  page: { beforeVersion?: number; limit: number; full: boolean },
): Promise<EntityVersionRow[]> {
  const { rows } = await trx.raw<{ rows: EntityVersionRow[] }>(
    `select ${columns(page.full)}, ? as labels, ? as favorite, ? as permission
     from entity e
     join entity_version cv on cv.tenant_id = e.tenant_id and cv.entity_id = e.id and cv.valid_to is null
     join entity_version v on v.tenant_id = e.tenant_id and v.entity_id = e.id and v.version < ?
     where e.tenant_id = ? and e.id = ?
     order by v.version desc
     limit ?`,
    [labelsSql(trx, undefined), favoriteSql(trx, caller), permissionRankSql(trx, caller), page.beforeVersion ?? 2 ** 31 - 1, caller.tenantId, entityId, page.limit],
  );
  return rows;
}
