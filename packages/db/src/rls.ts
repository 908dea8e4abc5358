/**
 * Row-level security of a tenant table (brief §4.1), written once for the migrations to come:
 * RLS enabled and forced (the table owner is held to it too), and one policy that admits, for
 * reading and writing, exactly the rows whose tenant column is the transaction's `app.tenant_id`
 * (set by `withTenant`). The setting is read once per statement (`(select …)`, an InitPlan), not
 * per row (brief §4.9), and an unset or empty setting matches nothing.
 *
 * Migrations applied before this helper spell the same SQL out; they stay as they are (an applied
 * migration is never edited). New migrations embed the helper's SQL in their `up`:
 *
 * ```ts
 * await knex.raw(`create table relationship_note (tenant_id uuid not null, …);
 *   ${tenantIsolationSql("relationship_note")}
 *   grant select, insert on relationship_note to promptcraft_graph;`);
 * ```
 *
 * Dropping the table drops its policies; {@link dropTenantIsolationSql} undoes the helper on a
 * table that stays.
 *
 * The text these functions return is frozen (rls.test.ts compares it verbatim): a migration that
 * embeds it was applied with that text, and a fresh database must get the same. A different policy
 * takes a new function and a new migration, never an edit here.
 */

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

function identifier(name: string, what: string): string {
  if (!IDENTIFIER.test(name)) throw new Error(`${what} must be a lower-case SQL identifier, got ${JSON.stringify(name)}`);
  return name;
}

/** The policy name {@link tenantIsolationSql} gives `table`'s policy: `<table>_tenant_isolation`. */
export function tenantIsolationPolicyName(table: string): string {
  return `${identifier(table, "table")}_tenant_isolation`;
}

/** Options of {@link tenantIsolationSql}. */
export interface TenantIsolationOptions {
  /** The tenant column (`tenant_id`; the `tenant` table itself uses `id`). */
  tenantColumn?: string;
  /**
   * Also let `promptcraft_system` read every row (policy `<table>_system_read`), for the SECURITY
   * DEFINER functions it owns that look rows up before a tenant is known.
   */
  systemRead?: boolean;
}

/**
 * The statements that make `table` private to its tenant: `enable` and `force row level security`
 * and the `<table>_tenant_isolation` policy (`using` and `with check` on the tenant column).
 */
export function tenantIsolationSql(table: string, options: TenantIsolationOptions = {}): string {
  const column = identifier(options.tenantColumn ?? "tenant_id", "tenantColumn");
  const policy = tenantIsolationPolicyName(table);
  const current = "(select nullif(current_setting('app.tenant_id', true), ''))::uuid";
  const statements = [
    `alter table ${table} enable row level security;`,
    `alter table ${table} force row level security;`,
    `create policy ${policy} on ${table} using (${column} = ${current}) with check (${column} = ${current});`,
  ];
  if (options.systemRead) statements.push(`create policy ${table}_system_read on ${table} for select to promptcraft_system using (true);`);
  return statements.join("\n");
}

/** The reverse of {@link tenantIsolationSql} for a table that stays (a `down` that keeps the table). */
export function dropTenantIsolationSql(table: string, options: Pick<TenantIsolationOptions, "systemRead"> = {}): string {
  const statements = [`drop policy if exists ${tenantIsolationPolicyName(table)} on ${table};`];
  if (options.systemRead) statements.push(`drop policy if exists ${table}_system_read on ${table};`);
  statements.push(`alter table ${table} no force row level security;`, `alter table ${table} disable row level security;`);
  return statements.join("\n");
}
