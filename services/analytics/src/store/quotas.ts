import type { Knex } from "@promptcraft/db";

/** A tenant's plan and its own limits (identity's `tenant.plan` and `tenant.quotas`). */
export interface TenantQuotaSettings {
  plan: string;
  /** TenantQuotas as protobuf JSON with proto field names (`max_monthly_renders`); int64 values may be strings. */
  quotas: Record<string, unknown>;
}

/**
 * The tenant's plan and quotas, read with analytics' own column grant on identity's `tenant`
 * (plan, quotas: no secret); undefined when the row is not visible (unknown tenant, or RLS).
 */
export async function tenantQuotaSettings(trx: Knex.Transaction, tenantId: string): Promise<TenantQuotaSettings | undefined> {
  const { rows } = await trx.raw<{ rows: { plan: string; quotas: Record<string, unknown> }[] }>("select plan, quotas from tenant where id = ?", [tenantId]);
  const row = rows[0];
  return row && { plan: row.plan, quotas: row.quotas };
}
