import { randomUUID } from "node:crypto";
import { withTenant, type Knex } from "@promptcraft/db";

// The canonical form and hash of a version live with the database code; re-exported so tests keep
// importing them from here.
export { canonicalJson, contentHash, type VersionFields } from "@promptcraft/db";

/**
 * Tenants and users for tests and seed scripts. Each writes the way identity does — inside
 * `withTenant` as its role, so row-level security and grants apply — and returns ids. Every test
 * creates its own tenant with {@link createTenant}; nothing here assumes an empty table. Assets and
 * their versions and labels are content's: `@promptcraft/content/fixtures` writes them through
 * content's store (this package cannot depend on a service: the platform's tests use it).
 */

/** A user's role in a tenant. */
export type UserRole = "owner" | "admin" | "editor" | "viewer";

/** A unique, valid tenant slug (`[a-z0-9-]`, 3-63 characters). */
export function uniqueSlug(prefix = "t"): string {
  return `${prefix}-${randomUUID().replace(/-/g, "").slice(0, 20)}`.toLowerCase();
}

/** Creates an active tenant (as promptcraft_identity) and returns its id. */
export async function createTenant(
  knex: Knex,
  options: { slug?: string; name?: string; plan?: string; quotas?: Record<string, unknown> } = {},
): Promise<string> {
  const id = randomUUID();
  const slug = options.slug ?? uniqueSlug();
  await withTenant(knex, { service: "identity", tenantId: id }, async (trx) => {
    await trx.raw("insert into tenant (id, slug, name, plan, quotas) values (?, ?, ?, ?, ?::jsonb)", [
      id,
      slug,
      options.name ?? `Tenant ${slug}`,
      options.plan ?? "free",
      JSON.stringify(options.quotas ?? {}),
    ]);
  });
  return id;
}

/** Creates an active user of a tenant (as promptcraft_identity) and returns its id. */
export async function createUser(
  knex: Knex,
  tenantId: string,
  role: UserRole = "editor",
  options: { email?: string; displayName?: string; passwordHash?: string | null } = {},
): Promise<string> {
  const id = randomUUID();
  await withTenant(knex, { service: "identity", tenantId }, async (trx) => {
    await trx.raw(
      "insert into app_user (tenant_id, id, email, display_name, role, password_hash) values (?, ?, ?, ?, ?, ?)",
      [
        tenantId,
        id,
        options.email ?? `user-${id.slice(0, 8)}@example.test`,
        options.displayName ?? `User ${id.slice(0, 8)}`,
        role,
        options.passwordHash ?? null,
      ],
    );
  });
  return id;
}
