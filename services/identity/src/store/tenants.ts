import type { Knex } from "@promptcraft/db";

/**
 * SQL of `tenant`, always inside a transaction opened by `withTenant` for that tenant (row-level
 * security admits exactly the row whose `id` is the transaction's tenant).
 */

/** A row of `tenant`. */
export interface TenantRow {
  id: string;
  slug: string;
  name: string;
  plan: string;
  status: "active" | "suspended";
  quotas: Record<string, unknown>;
  settings: Record<string, unknown>;
  created_at: Date;
  updated_at: Date;
  suspended_at: Date | null;
  /** SuspendTenant's reason while suspended; null while active (and for tenants suspended before it was kept). */
  suspend_reason: string | null;
  row_version: string;
}

const COLUMNS = "id, slug, name, plan, status, quotas, settings, created_at, updated_at, suspended_at, suspend_reason, row_version::text as row_version";

/** Inserts a tenant; `undefined` when a tenant with this id exists already (an idempotent retry). */
export async function insertTenant(
  trx: Knex.Transaction,
  t: { id: string; slug: string; name: string; plan: string; quotas: Record<string, unknown>; settings: Record<string, unknown> },
): Promise<TenantRow | undefined> {
  const { rows } = await trx.raw<{ rows: TenantRow[] }>(
    `insert into tenant (id, slug, name, plan, quotas, settings) values (?, ?, ?, ?, ?::jsonb, ?::jsonb)
     on conflict (id) do nothing returning ${COLUMNS}`,
    [t.id, t.slug, t.name, t.plan, JSON.stringify(t.quotas), JSON.stringify(t.settings)],
  );
  return rows[0];
}

/** The tenant, locked for update when `lock` is set. */
export async function findTenant(trx: Knex.Transaction, id: string, lock = false): Promise<TenantRow | undefined> {
  const { rows } = await trx.raw<{ rows: TenantRow[] }>(
    `select ${COLUMNS} from tenant where id = ?${lock ? " for update" : ""}`,
    [id],
  );
  return rows[0];
}

/** Writes the given fields, bumps `row_version`; returns the new row. */
export async function updateTenant(
  trx: Knex.Transaction,
  id: string,
  fields: { name?: string; plan?: string; quotas?: Record<string, unknown>; settings?: Record<string, unknown> },
): Promise<TenantRow> {
  const sets: string[] = [];
  const bindings: Knex.Value[] = [];
  if (fields.name !== undefined) {
    sets.push("name = ?");
    bindings.push(fields.name);
  }
  if (fields.plan !== undefined) {
    sets.push("plan = ?");
    bindings.push(fields.plan);
  }
  if (fields.quotas !== undefined) {
    sets.push("quotas = ?::jsonb");
    bindings.push(JSON.stringify(fields.quotas));
  }
  if (fields.settings !== undefined) {
    sets.push("settings = ?::jsonb");
    bindings.push(JSON.stringify(fields.settings));
  }
  const { rows } = await trx.raw<{ rows: TenantRow[] }>(
    `update tenant set ${[...sets, "updated_at = now()", "row_version = row_version + 1"].join(", ")}
     where id = ? returning ${COLUMNS}`,
    [...bindings, id],
  );
  return rows[0]!;
}

/** Suspends the tenant with `reason` (a string) or resumes it (`null`: the reason is cleared); returns the new row. */
export async function setTenantSuspended(trx: Knex.Transaction, id: string, reason: string | null): Promise<TenantRow> {
  const suspended = reason !== null;
  const { rows } = await trx.raw<{ rows: TenantRow[] }>(
    `update tenant set status = ?, suspended_at = ${suspended ? "now()" : "null"}, suspend_reason = ?, updated_at = now(),
       row_version = row_version + 1
     where id = ? returning ${COLUMNS}`,
    [suspended ? "suspended" : "active", reason, id],
  );
  return rows[0]!;
}

/** A page of tenants of every tenant (platform admin), through `admin_list_tenants`, after (`createdAt` ISO text, id). */
export async function listAllTenants(
  trx: Knex.Transaction,
  q: { status: "active" | "suspended" | null; after: { createdAt: string; id: string } | undefined; limit: number },
): Promise<TenantRow[]> {
  const { rows } = await trx.raw<{ rows: TenantRow[] }>(
    `select ${COLUMNS} from admin_list_tenants(?, ?::timestamptz, ?::uuid, ?)`,
    [q.status, q.after?.createdAt ?? null, q.after?.id ?? null, q.limit],
  );
  return rows;
}
