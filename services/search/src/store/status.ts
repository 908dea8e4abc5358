import { selectRows, type Reader } from "@promptcraft/db";
import { entityPermissionRankSql, type AccessPrincipal } from "@promptcraft/platform";

/** An embedding row as GetEmbeddingStatus shows it (a queued item without a row shows as pending). */
export interface EmbeddingStatusRow {
  model: string;
  dimensions: number | null;
  status: "pending" | "completed" | "failed";
  attempts: number;
  last_error: string | null;
  content_hash: string;
  created_at: Date;
  updated_at: Date;
  embedded_at: Date | null;
}

/** The entity (live) with the caller's rank and the version asked for (null: it has no such version). */
export async function findVersionAccess(
  reader: Reader,
  tenantId: string,
  principal: AccessPrincipal,
  entityId: string,
  version: number | null,
): Promise<{ permission: number; version: number | null } | undefined> {
  const rows = await selectRows<{ permission: number; version: number | null }>(
    reader,
    `select ? as permission, v.version
     from entity e
     join entity_version cv on cv.tenant_id = e.tenant_id and cv.entity_id = e.id and cv.valid_to is null
     left join entity_version v on v.tenant_id = e.tenant_id and v.entity_id = e.id and v.version = coalesce(?::int, cv.version)
     where e.tenant_id = ? and e.id = ? and e.deleted_at is null`,
    [entityPermissionRankSql(reader, principal), version, tenantId, entityId],
  );
  return rows[0];
}

/** The embedding rows of one version, and queued items that have none yet (as pending, no hash). */
export async function embeddingStatus(reader: Reader, tenantId: string, entityId: string, version: number): Promise<EmbeddingStatusRow[]> {
  return selectRows<EmbeddingStatusRow>(
    reader,
    `select model, dimensions, status, attempts, last_error, content_hash, created_at, updated_at, embedded_at
     from embedding where tenant_id = ? and entity_id = ? and version = ?
     union all
     select j.model, null, 'pending', j.attempts, j.last_error, '', j.created_at, j.created_at, null
     from embedding_job j
     where j.tenant_id = ? and j.entity_id = ? and j.version = ?
       and not exists (select 1 from embedding em where em.tenant_id = j.tenant_id and em.entity_id = j.entity_id
                         and em.version = j.version and em.model = j.model)
     order by model`,
    [tenantId, entityId, version, tenantId, entityId, version],
  );
}

/** Tenant-wide counts for one model over the current versions of live entities. */
export interface StateCounts {
  pending: number;
  completed: number;
  failed: number;
  missing: number;
}

/**
 * Per current version of a live entity: completed or failed by its embedding row; pending when it
 * is queued or its row is pending; missing when neither (never requested for this model).
 */
export async function stateCounts(reader: Reader, tenantId: string, model: string): Promise<StateCounts> {
  const rows = await selectRows<StateCounts>(
    reader,
    `select count(*) filter (where st = 'pending')::int as pending, count(*) filter (where st = 'completed')::int as completed,
            count(*) filter (where st = 'failed')::int as failed, count(*) filter (where st = 'missing')::int as missing
     from (
       select case
         when exists (select 1 from embedding_job j where j.tenant_id = cv.tenant_id and j.entity_id = cv.entity_id
                        and j.version = cv.version and j.model = ?) then 'pending'
         else coalesce(em.status, 'missing') end as st
       from entity_version cv
       join entity e on e.tenant_id = cv.tenant_id and e.id = cv.entity_id and e.deleted_at is null
       left join embedding em on em.tenant_id = cv.tenant_id and em.entity_id = cv.entity_id and em.version = cv.version and em.model = ?
       where cv.tenant_id = ? and cv.valid_to is null
     ) s`,
    [model, model, tenantId],
  );
  return rows[0]!;
}
