import { randomUUID } from "node:crypto";
import { contentHash, withTenant, type Knex, type VersionFields } from "@promptcraft/db";

// The canonical form and hash of a version live with the database code both the content service and
// these fixtures import; re-exported so tests keep importing them from here.
export { canonicalJson, contentHash, type VersionFields } from "@promptcraft/db";

/**
 * Small fixtures for tests and seed scripts. Each writes the way the owning service does — inside
 * `withTenant` as that service's role, so row-level security and grants apply — and returns ids.
 * Every test creates its own tenant with {@link createTenant}; nothing here assumes an empty table.
 */

/** A user's role in a tenant. */
export type UserRole = "owner" | "admin" | "editor" | "viewer";

/** An asset's type. */
export type EntityType = "context" | "template" | "workflow" | "library";

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

function versionDefaults(partial: Partial<VersionFields>): VersionFields {
  return {
    title: partial.title ?? "Untitled",
    description: partial.description ?? "",
    status: partial.status ?? "draft",
    visibility: partial.visibility ?? "private",
    content: partial.content ?? {},
    tags: partial.tags ?? [],
    metadata: partial.metadata ?? {},
  };
}

/**
 * Creates an asset with its version 1 (as promptcraft_content): the entity row and the first version
 * in one transaction, the version valid from the entity's creation time.
 */
export async function createEntity(
  knex: Knex,
  tenantId: string,
  ownerId: string,
  options: Partial<VersionFields> & { entityType?: EntityType; commitMessage?: string } = {},
): Promise<{ id: string; version: number }> {
  const id = randomUUID();
  const fields = versionDefaults(options);
  await withTenant(knex, { service: "content", tenantId, userId: ownerId }, async (trx) => {
    await trx.raw(
      `with e as (
         insert into entity (tenant_id, id, entity_type, owner_id, current_version)
         values (?, ?, ?, ?, 1)
         returning tenant_id, id, created_at
       )
       insert into entity_version (tenant_id, entity_id, version, previous_version, title, description, status,
                                   visibility, content, tags, metadata, commit_message, author_id, content_hash, valid_from)
       select e.tenant_id, e.id, 1, null, ?, ?, ?, ?, ?::jsonb, ?::text[], ?::jsonb, ?, ?, ?, e.created_at
       from e`,
      [
        tenantId,
        id,
        options.entityType ?? "context",
        ownerId,
        fields.title,
        fields.description,
        fields.status,
        fields.visibility,
        JSON.stringify(fields.content),
        fields.tags,
        JSON.stringify(fields.metadata),
        options.commitMessage ?? "create",
        ownerId,
        contentHash(fields),
      ],
    );
  });
  return { id, version: 1 };
}

/**
 * Writes a new version of an asset the way the content service does (as promptcraft_content), in one
 * statement and one transaction:
 * 1. bump the entity (`current_version + 1`, `row_version + 1`; with `expectedRowVersion`, only if
 *    the etag still matches — 0 rows means ABORTED);
 * 2. close the current version at that instant (`valid_to`);
 * 3. insert the new version with `previous_version = version - 1` and `valid_from` = the same instant.
 * `clock_timestamp()` (not `now()`, the transaction's start) keeps validity ordered even when a
 * transaction that started earlier commits later. Unchanged fields (equal content hash) make no version.
 *
 * @returns the version number now current and whether a version was written.
 */
export async function addVersion(
  knex: Knex,
  tenantId: string,
  entityId: string,
  authorId: string,
  changes: Partial<VersionFields> & {
    commitMessage?: string;
    expectedRowVersion?: string | number;
    rolledBackFrom?: number;
  } = {},
): Promise<{ version: number; changed: boolean }> {
  return withTenant(knex, { service: "content", tenantId, userId: authorId }, async (trx) => {
    const current = await trx.raw<{ rows: (VersionFields & { version: number })[] }>(
      `select v.version, v.title, v.description, v.status, v.visibility, v.content, v.tags, v.metadata
       from entity e
       join entity_version v on v.tenant_id = e.tenant_id and v.entity_id = e.id and v.valid_to is null
       where e.tenant_id = ? and e.id = ?
       for update of e`,
      [tenantId, entityId],
    );
    const row = current.rows[0];
    if (!row) throw new Error(`entity ${entityId} not found in tenant ${tenantId}`);
    const next = versionDefaults({ ...row, ...stripUndefined(changes) });
    const hash = contentHash(next);
    if (hash === contentHash(versionDefaults(row)) && changes.rolledBackFrom === undefined) {
      return { version: row.version, changed: false };
    }
    const written = await trx.raw<{ rows: { version: number }[] }>(
      `with bumped as (
         update entity e
         set current_version = e.current_version + 1, row_version = e.row_version + 1, updated_at = clock_timestamp()
         where e.tenant_id = ? and e.id = ? and e.deleted_at is null and (?::bigint is null or e.row_version = ?::bigint)
         returning e.tenant_id, e.id, e.current_version, e.updated_at
       ), closed as (
         update entity_version v
         set valid_to = b.updated_at
         from bumped b
         where v.tenant_id = b.tenant_id and v.entity_id = b.id and v.valid_to is null
         returning v.version, v.valid_to
       )
       insert into entity_version (tenant_id, entity_id, version, previous_version, title, description, status,
                                   visibility, content, tags, metadata, commit_message, author_id, content_hash,
                                   rolled_back_from, valid_from)
       select b.tenant_id, b.id, b.current_version, c.version, ?, ?, ?, ?, ?::jsonb, ?::text[], ?::jsonb, ?, ?, ?, ?, c.valid_to
       from bumped b cross join closed c
       returning version`,
      [
        tenantId,
        entityId,
        changes.expectedRowVersion ?? null,
        changes.expectedRowVersion ?? null,
        next.title,
        next.description,
        next.status,
        next.visibility,
        JSON.stringify(next.content),
        next.tags,
        JSON.stringify(next.metadata),
        changes.commitMessage ?? "",
        authorId,
        hash,
        changes.rolledBackFrom ?? null,
      ],
    );
    const version = written.rows[0]?.version;
    if (version === undefined) throw new Error(`entity ${entityId} changed concurrently (etag mismatch) or is deleted`);
    return { version, changed: true };
  });
}

/**
 * Points a label at a version (as promptcraft_content): closes the label's current row and opens a
 * new one at the same instant, keeping the `protected` flag unless given.
 */
export async function setLabel(
  knex: Knex,
  tenantId: string,
  entityId: string,
  label: string,
  version: number,
  movedBy: string | null = null,
  options: { protected?: boolean } = {},
): Promise<void> {
  await withTenant(knex, { service: "content", tenantId, userId: movedBy }, async (trx) => {
    await trx.raw(
      `with closed as (
         update entity_label l set valid_to = clock_timestamp()
         where l.tenant_id = ? and l.entity_id = ? and l.label = ? and l.valid_to is null
         returning l.valid_to, l.protected
       )
       insert into entity_label (tenant_id, entity_id, label, version, protected, moved_by, valid_from)
       select ?, ?, ?, ?, coalesce(?::boolean, (select c.protected from closed c), false), ?,
              coalesce((select c.valid_to from closed c), clock_timestamp())`,
      [tenantId, entityId, label, tenantId, entityId, label, version, options.protected ?? null, movedBy],
    );
  });
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
