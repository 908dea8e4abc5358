import { appendEvents, withTenant, type Knex } from "@promptcraft/db";
import { checkEtag, CURSOR_INTEGER, decodePageCursor, NotFoundError, pageOf, pageSizeOf, type Actor } from "@promptcraft/platform";
import { findEntityAccess } from "../store/access.js";
import * as store from "../store/entities.js";
import { findCurrentVersion, findVersion, insertNextVersion, type VersionRow } from "../store/versions.js";
import { permissionOfRank, principalOf, requirePermission, type Caller } from "./access.js";
import { changeEntity, entityEvent, readCurrent, requireLive, retriedWrite, scopeOf, type EntityView } from "./entities.js";
import { fieldChanges, textDiffs, type FieldChange, type TextDiff } from "./field-diff.js";

/**
 * Revisions (AIP-162): the history of an entity, newest first; rollback (a new version equal to an
 * old one — history is never rewritten); diff of two versions.
 */

function versionNotFound(version: number): NotFoundError {
  return new NotFoundError(`the entity has no version ${version}`, { metadata: { resource_type: "entity_version", version: String(version) } });
}

/** A page of an entity's versions, newest first, for a caller with view. The token is bound to the entity and view. */
export async function listRevisions(
  db: Knex,
  caller: Caller,
  entityId: string,
  q: { pageSize: number; pageToken: string; full: boolean },
): Promise<{ revisions: EntityView[]; nextPageToken: string }> {
  const params = { t: caller.tenantId, e: entityId.toLowerCase(), full: q.full };
  const cursor = decodePageCursor(q.pageToken, params, { version: CURSOR_INTEGER });
  const limit = pageSizeOf(q.pageSize);
  return withTenant(db, scopeOf(caller), async (trx) => {
    const entity = await findEntityAccess(trx, caller, entityId);
    requirePermission(entity ? permissionOfRank(entity.permission) : "none", "view", "reading the history");
    const rows = await store.listEntityVersions(trx, caller, entityId, { beforeVersion: cursor ? Number(cursor.version) : undefined, limit: limit + 1, full: q.full });
    const { page, nextPageToken } = pageOf(rows, limit, params, (last) => ({ version: String(last.version) }));
    return { revisions: page.map((row) => ({ row, permission: permissionOfRank(row.permission) })), nextPageToken };
  });
}

/**
 * Writes a new version equal to `version` (recording `rolled_back_from`). Rolling back to content
 * equal to the current version's (including the current version itself) writes nothing and
 * returns the current entity, like an update that changes nothing. Needs edit. Idempotent with a
 * request id, like UpdateEntity.
 */
export async function rollbackEntity(
  db: Knex,
  caller: Caller,
  entityId: string,
  version: number,
  etag: string,
  commit: { message: string; requestId: string },
  actor: Actor,
): Promise<EntityView> {
  const author = principalOf(caller);
  return changeEntity(db, caller, entityId, "edit", "rolling back the entity", async (trx, entity) => {
    const retried = await retriedWrite(trx, caller, entityId, commit.requestId);
    if (retried) return retried;
    requireLive(entity);
    checkEtag(etag, entity.row_version, "entity");
    const old = await findVersion(trx, caller.tenantId, entityId, version);
    if (!old) throw versionNotFound(version);
    const current = await findCurrentVersion(trx, caller.tenantId, entityId);
    if (old.content_hash !== current.content_hash) {
      const message = commit.message || `Rollback to version ${version}`;
      const written = await insertNextVersion(trx, {
        tenantId: caller.tenantId,
        entityId,
        fields: old,
        hash: old.content_hash,
        commitMessage: message,
        author,
        rolledBackFrom: version,
        requestId: commit.requestId || null,
      });
      await appendEvents(trx, [
        entityEvent(caller.tenantId, entityId, written.row_version, "content.entity.rolled_back", {
          version: written.version,
          previous_version: current.version,
          restored_from_version: version,
          commit_message: message,
          content_hash: old.content_hash,
        }, actor),
      ]);
    }
    return readCurrent(trx, caller, entityId);
  });
}

/** The comparison of two versions. */
export interface RevisionDiff {
  baseVersion: number;
  targetVersion: number;
  identical: boolean;
  changes: FieldChange[];
  textDiffs: TextDiff[];
}

/** Compares `baseVersion` with `targetVersion` (default: the current version), for a caller with view. */
export async function diffRevisions(
  db: Knex,
  caller: Caller,
  entityId: string,
  baseVersion: number,
  targetVersion: number | undefined,
  contextLines: number,
): Promise<RevisionDiff> {
  return withTenant(db, scopeOf(caller), async (trx) => {
    const entity = await findEntityAccess(trx, caller, entityId);
    requirePermission(entity ? permissionOfRank(entity.permission) : "none", "view", "comparing versions");
    const load = async (v: number): Promise<VersionRow> => (await findVersion(trx, caller.tenantId, entityId, v)) ?? Promise.reject(versionNotFound(v));
    const base = await load(baseVersion);
    const target = await load(targetVersion ?? entity!.current_version);
    const identical = base.content_hash === target.content_hash;
    const changes = identical ? [] : fieldChanges(base, target);
    return {
      baseVersion: base.version,
      targetVersion: target.version,
      identical,
      changes,
      textDiffs: textDiffs(changes, { base: `v${base.version}`, target: `v${target.version}` }, contextLines),
    };
  });
}
