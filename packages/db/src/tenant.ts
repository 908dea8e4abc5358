import type { Knex } from "knex";
import { cancellableTransaction } from "./cancel.js";

/** The database roles of the five services (brief §4.2): each writes only its own tables. */
export const SERVICE_ROLES = {
  identity: "promptcraft_identity",
  content: "promptcraft_content",
  graph: "promptcraft_graph",
  search: "promptcraft_search",
  analytics: "promptcraft_analytics",
} as const;

/** A service name, which is also the key of its role in {@link SERVICE_ROLES}. */
export type ServiceName = keyof typeof SERVICE_ROLES;

/** Who a tenant-scoped transaction acts for. */
export interface TenantScope {
  /** Service whose database role the transaction assumes. */
  service: ServiceName;
  /** Tenant whose rows the transaction may see and write (row-level security). */
  tenantId: string;
  /** Acting user, recorded by policies and audit columns; absent for system work. */
  userId?: string | null;
  /**
   * Stops the transaction when it aborts — an RPC call's `ctx.signal` (client cancel, deadline,
   * forced shutdown), a background job's: a running statement is cancelled on the server, the
   * transaction rolled back, and withTenant rejects with the signal's reason. Nothing commits after
   * the abort.
   */
  signal?: AbortSignal;
  /**
   * Further settings for this transaction only (`SET LOCAL`, sent with the role and tenant in the
   * same round trip): planner or extension knobs a query needs, e.g. `hnsw.ef_search`, or
   * `plan_cache_mode` for reads whose best plan depends on their values.
   */
  settings?: Readonly<Record<string, string>>;
}

/** `, set_config(?, ?, true)` for each of `settings`, and its bindings: appended to a scope's context statement. */
export function settingsSql(settings: Readonly<Record<string, string>> | undefined, placeholder: (n: number) => string): { sql: string; values: string[] } {
  const entries = Object.entries(settings ?? {});
  return {
    sql: entries.map((_, i) => `, set_config(${placeholder(2 * i)}, ${placeholder(2 * i + 1)}, true)`).join(""),
    values: entries.flat(),
  };
}

/**
 * Runs `work` in one transaction that acts as `scope.service`'s role for `scope.tenantId` only.
 *
 * The role and the tenant are set with `set_config(..., true)`, i.e. `SET LOCAL`: they end with the
 * transaction, so nothing leaks to the next user of a pooled connection (session-level `SET` would,
 * brief §4.9). One round trip sets all three settings, and the scope's further `settings`.
 *
 * It stops when `scope.signal` aborts (see {@link TenantScope.signal}) or the pool is closed
 * ({@link closeKnex}). `knex` is a pool made by {@link createKnex}, or a transaction (the work
 * then runs in a savepoint of it, stopped with it).
 */
export async function withTenant<T>(
  knex: Knex,
  scope: TenantScope,
  work: (trx: Knex.Transaction) => Promise<T>,
  config?: Knex.TransactionConfig,
): Promise<T> {
  return cancellableTransaction(
    knex,
    scope.signal,
    (trx) => {
      const extra = settingsSql(scope.settings, () => "?");
      return trx.raw(`select set_config('role', ?, true), set_config('app.tenant_id', ?, true), set_config('app.user_id', ?, true)${extra.sql}`, [
        SERVICE_ROLES[scope.service],
        scope.tenantId,
        scope.userId ?? "",
        ...extra.values,
      ]);
    },
    work,
    config,
  );
}

/**
 * Runs `work` in one transaction as `service`'s role with no tenant set: row-level security then
 * hides every tenant row. For work that spans tenants on purpose (partition maintenance, read-model
 * refresh, looking a tenant up by slug during login) through functions and tables that allow it.
 * `options.signal` stops it like {@link TenantScope.signal} stops withTenant.
 */
export async function withServiceRole<T>(
  knex: Knex,
  service: ServiceName,
  work: (trx: Knex.Transaction) => Promise<T>,
  options: { signal?: AbortSignal } = {},
): Promise<T> {
  return cancellableTransaction(knex, options.signal, (trx) => trx.raw("select set_config('role', ?, true)", [SERVICE_ROLES[service]]), work);
}
