import { contentHash, withTenant, type Knex, type VersionFields } from "@promptcraft/db";
import type { Caller } from "./domain/access.js";
import { firstFreeName, slugOf } from "./domain/names.js";
import { findEntityAccess } from "./store/access.js";
import { insertEntity, type EntityType } from "./store/entities.js";
import { currentLabel, moveLabel } from "./store/labels.js";
import { namesLike } from "./store/names.js";
import { findCurrentVersion, insertNextVersion } from "./store/versions.js";

/**
 * Fixtures of content's aggregates for tests, seeds and benchmarks (`@promptcraft/content/fixtures`),
 * written through content's own store — the SQL the service runs — as promptcraft_content inside
 * `withTenant`, so row-level security, grants and the temporal constraints all apply. They skip the
 * service's rules (roles, quotas, events), which is what lets a test arrange a history directly.
 * Tenants and users come from `@promptcraft/testing`.
 */

export type { EntityType };

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

/** The fixtures act with every permission (they arrange data; the rules are the service's to test). */
function ownerCaller(tenantId: string, userId: string | null): Caller {
  return { tenantId, userId: userId ?? undefined, role: "owner" };
}

/**
 * Creates an asset with its version 1 (valid from the entity's creation) owned by `ownerId`, named
 * `name` or, like the service does, by its title made unique in the tenant.
 */
export async function createEntity(
  knex: Knex,
  tenantId: string,
  ownerId: string,
  options: Partial<VersionFields> & { entityType?: EntityType; commitMessage?: string; name?: string } = {},
): Promise<{ id: string; version: number; name: string }> {
  const fields = versionDefaults(options);
  const base = slugOf(fields.title);
  let name = options.name ?? base;
  const id = await withTenant(knex, { service: "content", tenantId, userId: ownerId }, async (trx) => {
    if (options.name === undefined) name = firstFreeName(base, await namesLike(trx, tenantId, base));
    return insertEntity(trx, {
      tenantId,
      type: options.entityType ?? "context",
      name,
      owner: { kind: "user", id: ownerId },
      requestId: null,
      fields,
      hash: contentHash(fields),
      commitMessage: options.commitMessage ?? "create",
    });
  });
  return { id: id!, version: 1, name };
}

/**
 * Writes the next version of an asset the way the service does: lock the entity, check the etag
 * (`expectedRowVersion`, when given; a mismatch throws), then `insertNextVersion`. Unchanged fields
 * (equal content hash) write nothing, unless it is a rollback (`rolledBackFrom`). A deleted entity
 * throws.
 *
 * @returns the version number now current and whether a version was written.
 */
export async function addVersion(
  knex: Knex,
  tenantId: string,
  entityId: string,
  authorId: string,
  changes: Partial<VersionFields> & { commitMessage?: string; expectedRowVersion?: string | number; rolledBackFrom?: number } = {},
): Promise<{ version: number; changed: boolean }> {
  return withTenant(knex, { service: "content", tenantId, userId: authorId }, async (trx) => {
    const entity = await findEntityAccess(trx, ownerCaller(tenantId, authorId), entityId, true);
    if (!entity) throw new Error(`entity ${entityId} not found in tenant ${tenantId}`);
    if (entity.deleted_at) throw new Error(`entity ${entityId} is deleted`);
    if (changes.expectedRowVersion !== undefined && String(changes.expectedRowVersion) !== entity.row_version) {
      throw new Error(`entity ${entityId} changed concurrently (etag ${entity.row_version}, expected ${String(changes.expectedRowVersion)})`);
    }
    const current = await findCurrentVersion(trx, tenantId, entityId);
    const given = Object.fromEntries(Object.entries(changes).filter(([, v]) => v !== undefined)) as Partial<VersionFields>;
    const next = versionDefaults({ ...current, ...given });
    const hash = contentHash(next);
    if (hash === current.content_hash && changes.rolledBackFrom === undefined) return { version: current.version, changed: false };
    const written = await insertNextVersion(trx, {
      tenantId,
      entityId,
      fields: next,
      hash,
      commitMessage: changes.commitMessage ?? "",
      author: { kind: "user", id: authorId },
      rolledBackFrom: changes.rolledBackFrom ?? null,
      requestId: null,
    });
    return { version: written.version, changed: true };
  });
}

/**
 * Points a label at a version (closing its current row and opening the next at the same instant),
 * keeping the label's `protected` flag unless given. Only the pointer: no label event, no etag bump.
 */
export async function setLabel(
  knex: Knex,
  tenantId: string,
  entityId: string,
  label: string,
  version: number,
  movedBy: string,
  options: { protected?: boolean } = {},
): Promise<void> {
  await withTenant(knex, { service: "content", tenantId, userId: movedBy }, async (trx) => {
    if (!(await findEntityAccess(trx, ownerCaller(tenantId, movedBy), entityId, true))) throw new Error(`entity ${entityId} not found in tenant ${tenantId}`);
    const current = await currentLabel(trx, tenantId, entityId, label);
    await moveLabel(trx, { tenantId, entityId, label, version, protected: options.protected ?? current?.protected ?? false, movedBy: { kind: "user", id: movedBy } });
  });
}
