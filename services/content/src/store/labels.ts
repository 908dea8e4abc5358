import { selectRows, sqlTime, type Knex, type Reader } from "@promptcraft/db";
import { principalColumns, type Principal } from "../domain/access.js";

/**
 * Labels: the temporal pointers (`entity_label`: move = close the current row at t and open the
 * next at t; remove = close only) and their history (`entity_label_event`). Callers hold the
 * entity row lock, which serialises every change of one entity's labels.
 */

/** A label's current (or as-of) target. */
export interface LabelRow {
  label: string;
  version: number;
  protected: boolean;
  /** Who set the label here: a user, or (`moved_by_api_key_id`) an API key; neither for `latest`. */
  moved_by: string | null;
  moved_by_api_key_id: string | null;
  valid_from: Date;
  implicit: boolean;
}

/** One label change, as ListLabelHistory shows it. */
export interface LabelEventRow {
  id: string;
  entity_id: string;
  label: string;
  event_type: "set" | "moved" | "removed";
  from_version: number | null;
  to_version: number | null;
  actor_type: string;
  actor_id: string | null;
  reason: string;
  request_id: string | null;
  occurred_at: Date;
}

/** Whether `label` is one of the tenant's protected labels (tenant setting `protected_labels`). */
export async function isProtectedLabel(trx: Knex.Transaction, label: string): Promise<boolean> {
  const { rows } = await trx.raw<{ rows: { protected: boolean }[] }>("select ? = any(tenant_protected_labels()) as protected", [label]);
  return rows[0]?.protected === true;
}

/** The label's current row, if it points anywhere. */
export async function currentLabel(trx: Knex.Transaction, tenantId: string, entityId: string, label: string): Promise<LabelRow | undefined> {
  const { rows } = await trx.raw<{ rows: LabelRow[] }>(
    `select label, version, protected, moved_by, moved_by_api_key_id, valid_from, false as implicit
     from entity_label where tenant_id = ? and entity_id = ? and label = ? and valid_to is null`,
    [tenantId, entityId, label],
  );
  return rows[0];
}

/** Whether the entity has this version. */
export async function versionExists(trx: Knex.Transaction, tenantId: string, entityId: string, version: number): Promise<boolean> {
  const { rows } = await trx.raw<{ rows: unknown[] }>("select 1 from entity_version where tenant_id = ? and entity_id = ? and version = ?", [
    tenantId,
    entityId,
    version,
  ]);
  return rows.length > 0;
}

/**
 * The instant of a label change: now, but strictly after the label's current row started (two
 * changes within one clock tick would otherwise give an empty validity range).
 */
const CHANGE_TIME = `greatest(clock_timestamp(), coalesce((select c.valid_from from entity_label c
  where c.tenant_id = ? and c.entity_id = ? and c.label = ? and c.valid_to is null), '-infinity') + interval '1 microsecond')`;

/** Points `label` at `version`: closes the current row (if any) and opens the next at the same instant. */
export async function moveLabel(
  trx: Knex.Transaction,
  m: { tenantId: string; entityId: string; label: string; version: number; protected: boolean; movedBy: Principal },
): Promise<LabelRow> {
  const { rows } = await trx.raw<{ rows: LabelRow[] }>(
    `with t as (select ${CHANGE_TIME} as at),
     closed as (
       update entity_label l set valid_to = t.at from t
       where l.tenant_id = ? and l.entity_id = ? and l.label = ? and l.valid_to is null
       returning l.valid_to
     )
     -- Reading "closed" runs the close before the insert, so the exclusion constraint sees it.
     insert into entity_label (tenant_id, entity_id, label, version, protected, moved_by, moved_by_api_key_id, valid_from)
     select ?, ?, ?, ?, ?, ?, ?, coalesce((select c.valid_to from closed c), t.at) from t
     returning label, version, protected, moved_by, moved_by_api_key_id, valid_from, false as implicit`,
    [m.tenantId, m.entityId, m.label, m.tenantId, m.entityId, m.label, m.tenantId, m.entityId, m.label, m.version, m.protected, ...principalColumns(m.movedBy)],
  );
  return rows[0]!;
}

/** Closes the label's current row; returns the instant, or undefined if it pointed nowhere. */
export async function closeLabel(trx: Knex.Transaction, tenantId: string, entityId: string, label: string): Promise<Date | undefined> {
  const { rows } = await trx.raw<{ rows: { valid_to: Date }[] }>(
    `update entity_label l set valid_to = ${CHANGE_TIME}
     where l.tenant_id = ? and l.entity_id = ? and l.label = ? and l.valid_to is null
     returning l.valid_to`,
    [tenantId, entityId, label, tenantId, entityId, label],
  );
  return rows[0]?.valid_to;
}

/** Records one label change in the label history. */
export async function insertLabelEvent(
  trx: Knex.Transaction,
  e: {
    tenantId: string;
    entityId: string;
    label: string;
    eventType: LabelEventRow["event_type"];
    fromVersion: number | null;
    toVersion: number | null;
    protected: boolean;
    actorType: string;
    actorId: string | null;
    reason: string;
    requestId: string;
    idempotencyKey: string | null;
    occurredAt: Date;
  },
): Promise<void> {
  await trx.raw(
    `insert into entity_label_event (tenant_id, entity_id, label, event_type, from_version, to_version, protected, actor_type,
                                     actor_id, reason, request_id, idempotency_key, occurred_at)
     values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    [e.tenantId, e.entityId, e.label, e.eventType, e.fromVersion, e.toVersion, e.protected, e.actorType, e.actorId, e.reason, e.requestId, e.idempotencyKey, sqlTime(e.occurredAt)],
  );
}

/** The label change an earlier SetLabel with this AIP-155 request id made, if any. */
export async function labelEventByIdempotencyKey(
  trx: Knex.Transaction,
  tenantId: string,
  entityId: string,
  key: string,
): Promise<LabelEventRow | undefined> {
  const { rows } = await trx.raw<{ rows: LabelEventRow[] }>(
    `select ${EVENT_COLUMNS} from entity_label_event where tenant_id = ? and entity_id = ? and idempotency_key = ?`,
    [tenantId, entityId, key],
  );
  return rows[0];
}

const EVENT_COLUMNS =
  "id::text as id, entity_id, label, event_type, from_version, to_version, actor_type, actor_id, reason, request_id, occurred_at";

/**
 * A page of an entity's labels by name, `latest` (the current version, or the version valid at
 * `asOf`) included as an implicit row so that it pages like the others.
 */
export async function listLabels(
  trx: Reader,
  tenantId: string,
  entityId: string,
  q: { asOf: Date | null; after: string | null; limit: number },
): Promise<LabelRow[]> {
  const asOf = q.asOf && sqlTime(q.asOf);
  const rows = await selectRows<LabelRow>(trx, 
    `select labels.label, labels.version, labels.protected, labels.moved_by, labels.moved_by_api_key_id, labels.valid_from, labels.implicit from (
       select l.label, l.version, l.label = any(tenant_protected_labels()) as protected, l.moved_by, l.moved_by_api_key_id, l.valid_from,
              false as implicit
       from entity_label l
       where l.tenant_id = ? and l.entity_id = ?
         and (case when ?::timestamptz is null then l.valid_to is null
                   else l.valid_from <= ?::timestamptz and (l.valid_to is null or l.valid_to > ?::timestamptz) end)
       union all
       select 'latest', v.version, false, null, null, v.valid_from, true
       from entity_version v
       where v.tenant_id = ? and v.entity_id = ?
         and (case when ?::timestamptz is null then v.valid_to is null
                   else v.valid_from <= ?::timestamptz and (v.valid_to is null or v.valid_to > ?::timestamptz) end)
     ) labels
     where ?::text is null or labels.label > ?::text
     order by labels.label
     limit ?`,
    [tenantId, entityId, asOf, asOf, asOf, tenantId, entityId, asOf, asOf, asOf, q.after, q.after, q.limit],
  );
  return rows;
}

/** A page of an entity's label history, newest first (`id` grows with every change of the entity). */
export async function listLabelEvents(
  trx: Reader,
  tenantId: string,
  entityId: string,
  q: { label: string | null; beforeId: string | null; limit: number },
): Promise<LabelEventRow[]> {
  const rows = await selectRows<LabelEventRow>(trx, 
    // Qualified: a bare `id` in ORDER BY would name the output column `id::text as id` and sort as text
    // ("9" after "10"), which put the history out of order whenever the ids crossed a power of ten.
    `select ${EVENT_COLUMNS} from entity_label_event ev
     where ev.tenant_id = ? and ev.entity_id = ? and (?::text is null or ev.label = ?::text) and (?::bigint is null or ev.id < ?::bigint)
     order by ev.id desc
     limit ?`,
    [tenantId, entityId, q.label, q.label, q.beforeId, q.beforeId, q.limit],
  );
  return rows;
}

/** Bumps the entity's etag (row_version) for a label change; returns the new value. */
export async function bumpRowVersion(trx: Knex.Transaction, tenantId: string, entityId: string): Promise<string> {
  const { rows } = await trx.raw<{ rows: { row_version: string }[] }>(
    "update entity set row_version = row_version + 1 where tenant_id = ? and id = ? returning row_version::text as row_version",
    [tenantId, entityId],
  );
  return rows[0]!.row_version;
}
