import { afterAll, describe, test } from "vitest";
import assert from "node:assert/strict";
import { withTenant } from "@promptcraft/db";
import { addVersion, createEntity, setLabel } from "@promptcraft/content/fixtures";
import { contentHash, createTenant, createUser } from "@promptcraft/testing";
import { SQLSTATE, firstRow, openKnex, rejectsWith } from "./support.js";

const knex = openKnex();
afterAll(() => knex.destroy());

const HASH = contentHash({
  title: "x",
  description: "",
  status: "draft",
  visibility: "private",
  content: {},
  tags: [],
  metadata: {},
});

/** A tenant, a user and an entity with versions 1..n written the way the content service writes them. */
async function entityWithVersions(n: number) {
  const tenantId = await createTenant(knex);
  const userId = await createUser(knex, tenantId, "editor");
  const { id: entityId } = await createEntity(knex, tenantId, userId, { title: "v1", tags: ["alpha"] });
  for (let v = 2; v <= n; v++) await addVersion(knex, tenantId, entityId, userId, { title: `v${v}` });
  return { tenantId, userId, entityId };
}

/** Inserts an entity_version row directly (as promptcraft_content), for proving what the database refuses. */
function insertVersion(
  trx: Parameters<Parameters<typeof withTenant>[2]>[0],
  row: { tenantId: string; entityId: string; authorId: string; version: number; previous: number | null; from: string; to?: string | null },
) {
  return trx.raw(
    `insert into entity_version (tenant_id, entity_id, version, previous_version, title, author_id, content_hash, valid_from, valid_to)
     values (?, ?, ?, ?, 'x', ?, ?, ?::timestamptz, ?::timestamptz)`,
    [row.tenantId, row.entityId, row.version, row.previous, row.authorId, HASH, row.from, row.to ?? null],
  );
}

describe("temporal versions (entity_version)", () => {
  test("versions written as the service writes them: gap-free, contiguous, one current; get_entity_history", async () => {
    const { tenantId, userId, entityId } = await entityWithVersions(3);
    const unchanged = await addVersion(knex, tenantId, entityId, userId, { title: "v3" });
    assert.deepEqual(unchanged, { version: 3, changed: false }, "an update that changes nothing makes no version");
    await setLabel(knex, tenantId, entityId, "production", 2, userId);

    const history = await withTenant(knex, { service: "content", tenantId }, (trx) =>
      trx.raw<{ rows: { version: number; previous_version: number | null; title: string; valid_from: Date; valid_to: Date | null; is_current: boolean; labels: string[] }[] }>(
        "select version, previous_version, title, valid_from, valid_to, is_current, labels from get_entity_history(?, ?)",
        [tenantId, entityId],
      ),
    );
    assert.deepEqual(history.rows.map((r) => r.version), [3, 2, 1]);
    assert.deepEqual(history.rows.map((r) => r.previous_version), [2, 1, null]);
    assert.deepEqual(history.rows.map((r) => r.is_current), [true, false, false]);
    assert.deepEqual(history.rows.map((r) => r.labels), [[], ["production"], []]);
    const [v3, v2, v1] = history.rows;
    assert.ok(v1 && v2 && v3);
    assert.equal(v3.valid_to, null);
    assert.equal(v2.valid_to?.getTime(), v3.valid_from.getTime(), "v3 starts when v2 ends");
    assert.equal(v1.valid_to?.getTime(), v2.valid_from.getTime(), "v2 starts when v1 ends");

    const entity = await withTenant(knex, { service: "content", tenantId }, (trx) =>
      trx.raw<{ rows: { current_version: number; row_version: string }[] }>(
        "select current_version, row_version from entity where tenant_id = ? and id = ?",
        [tenantId, entityId],
      ),
    );
    assert.deepEqual(firstRow(entity), { current_version: 3, row_version: "3" });
  });

  test("as of a time: exactly one version answers", async () => {
    const { tenantId, entityId } = await entityWithVersions(3);
    await withTenant(knex, { service: "content", tenantId }, async (trx) => {
      const bounds = await trx.raw<{ rows: { version: number; valid_from: string }[] }>(
        "select version, valid_from::text from entity_version where tenant_id = ? and entity_id = ? order by version",
        [tenantId, entityId],
      );
      for (const b of bounds.rows) {
        const asOf = await trx.raw<{ rows: { version: number }[] }>(
          `select version from entity_version
           where tenant_id = ? and entity_id = ? and tstzrange(valid_from, valid_to) @> ?::timestamptz`,
          [tenantId, entityId, b.valid_from],
        );
        assert.deepEqual(asOf.rows.map((r) => r.version), [b.version]);
      }
    });
  });

  test("one current version per entity: a second open version is refused", async () => {
    const { tenantId, userId, entityId } = await entityWithVersions(1);
    await rejectsWith(
      withTenant(knex, { service: "content", tenantId }, (trx) =>
        insertVersion(trx, { tenantId, entityId, authorId: userId, version: 2, previous: 1, from: "2999-01-01T00:00:00Z" }),
      ),
      // Two open ranges always overlap: the exclusion constraint (checked first) and the partial unique
      // index entity_version_current_key both forbid it.
      SQLSTATE.exclusionViolation,
      "entity_version_no_overlap",
    );
    // Re-opening a closed version while another is current is refused too.
    const { tenantId: t2, entityId: e2 } = await entityWithVersions(2);
    const error = await withTenant(knex, { service: "content", tenantId: t2 }, (trx) =>
      trx.raw("update entity_version set valid_to = null where tenant_id = ? and entity_id = ? and version = 1", [t2, e2]),
    ).then(
      () => undefined,
      (e: { code?: string; constraint?: string }) => e,
    );
    assert.ok(error, "re-opening version 1 must fail");
    assert.ok(
      ["entity_version_no_overlap", "entity_version_current_key", "entity_version_previous_fkey"].includes(error.constraint ?? ""),
      `unexpected constraint ${String(error.constraint)}`,
    );
  });

  test("no overlapping validity", async () => {
    const { tenantId, userId, entityId } = await entityWithVersions(2);
    await rejectsWith(
      withTenant(knex, { service: "content", tenantId }, async (trx) => {
        const v1 = firstRow(
          await trx.raw<{ rows: { valid_from: string } [] }>(
            "select valid_from::text from entity_version where tenant_id = ? and entity_id = ? and version = 1",
            [tenantId, entityId],
          ),
        );
        // A closed period inside version 1's.
        await trx.raw(
          `insert into entity_version (tenant_id, entity_id, version, previous_version, title, author_id, content_hash, valid_from, valid_to)
           values (?, ?, 3, 2, 'x', ?, ?, ?::timestamptz, ?::timestamptz + interval '1 microsecond')`,
          [tenantId, entityId, userId, HASH, v1.valid_from, v1.valid_from],
        );
      }),
      SQLSTATE.exclusionViolation,
      "entity_version_no_overlap",
    );
  });

  test("gap-free and fork-free version numbers; contiguous validity", async () => {
    const { tenantId, userId, entityId } = await entityWithVersions(1);
    const close = "update entity_version set valid_to = '2999-01-01T00:00:00Z' where tenant_id = ? and entity_id = ? and valid_to is null";
    // Version 3 without a version 2: no predecessor.
    await rejectsWith(
      withTenant(knex, { service: "content", tenantId }, async (trx) => {
        await trx.raw(close, [tenantId, entityId]);
        await insertVersion(trx, { tenantId, entityId, authorId: userId, version: 3, previous: 2, from: "2999-01-01T00:00:00Z" });
      }),
      SQLSTATE.foreignKeyViolation,
      "entity_version_previous_fkey",
    );
    // previous_version must be version - 1.
    await rejectsWith(
      withTenant(knex, { service: "content", tenantId }, async (trx) => {
        await trx.raw(close, [tenantId, entityId]);
        await insertVersion(trx, { tenantId, entityId, authorId: userId, version: 3, previous: 1, from: "2999-01-01T00:00:00Z" });
      }),
      SQLSTATE.checkViolation,
      "entity_version_previous_check",
    );
    // Versions start at 1.
    await rejectsWith(
      withTenant(knex, { service: "content", tenantId }, (trx) =>
        insertVersion(trx, { tenantId, entityId, authorId: userId, version: 0, previous: null, from: "2999-01-01T00:00:00Z" }),
      ),
      SQLSTATE.checkViolation,
    );
    // A gap in time: version 2 must start exactly when version 1 ended.
    await rejectsWith(
      withTenant(knex, { service: "content", tenantId }, async (trx) => {
        await trx.raw(close, [tenantId, entityId]);
        await insertVersion(trx, { tenantId, entityId, authorId: userId, version: 2, previous: 1, from: "2999-01-02T00:00:00Z" });
      }),
      SQLSTATE.foreignKeyViolation,
      "entity_version_previous_fkey",
    );
    // The correct next version is accepted (then rolled back by the failing marker).
    await assert.rejects(
      withTenant(knex, { service: "content", tenantId }, async (trx) => {
        await trx.raw(close, [tenantId, entityId]);
        await insertVersion(trx, { tenantId, entityId, authorId: userId, version: 2, previous: 1, from: "2999-01-01T00:00:00Z" });
        throw new Error("rollback marker");
      }),
      /rollback marker/,
    );
    // Fork: a second version 2 after version 1.
    const forked = await entityWithVersions(2);
    await rejectsWith(
      withTenant(knex, { service: "content", tenantId: forked.tenantId }, async (trx) => {
        await trx.raw(close, [forked.tenantId, forked.entityId]);
        await insertVersion(trx, {
          tenantId: forked.tenantId,
          entityId: forked.entityId,
          authorId: forked.userId,
          version: 2,
          previous: 1,
          from: "2999-01-01T00:00:00Z",
        });
      }),
      SQLSTATE.uniqueViolation,
      "entity_version_pkey",
    );
  });

  test("history is immutable for the content role", async () => {
    const { tenantId, entityId } = await entityWithVersions(2);
    await rejectsWith(
      withTenant(knex, { service: "content", tenantId }, (trx) =>
        trx.raw("update entity_version set title = 'rewritten' where tenant_id = ? and entity_id = ?", [tenantId, entityId]),
      ),
      SQLSTATE.insufficientPrivilege,
    );
    await rejectsWith(
      withTenant(knex, { service: "content", tenantId }, (trx) =>
        trx.raw("delete from entity_version where tenant_id = ? and entity_id = ?", [tenantId, entityId]),
      ),
      SQLSTATE.insufficientPrivilege,
    );
  });

  test("an owner and an author are a user or an API key of the tenant, exactly one", async () => {
    const { tenantId, userId, entityId } = await entityWithVersions(1);
    const keyId = firstRow(
      await withTenant(knex, { service: "identity", tenantId }, (trx) =>
        trx.raw<{ rows: { id: string }[] }>(
          "insert into api_key (tenant_id, name, prefix, secret_hash, role) values (?, 'ci', ?, ?, 'editor') returning id",
          [tenantId, `pck_${entityId.slice(0, 8)}`, "f".repeat(64)],
        ),
      ),
    ).id;
    const insertEntity = (owner: string | null, ownerKey: string | null) =>
      withTenant(knex, { service: "content", tenantId }, (trx) =>
        trx.raw("insert into entity (tenant_id, entity_type, name, owner_id, owner_api_key_id) values (?, 'context', ?, ?, ?)", [
          tenantId,
          `keyed-${Math.random().toString(36).slice(2, 10)}`,
          owner,
          ownerKey,
        ]),
      );
    await insertEntity(null, keyId);
    await rejectsWith(insertEntity(null, null), SQLSTATE.checkViolation, "entity_owner_check");
    await rejectsWith(insertEntity(userId, keyId), SQLSTATE.checkViolation, "entity_owner_check");
    const otherTenant = await createTenant(knex);
    await rejectsWith(
      withTenant(knex, { service: "content", tenantId: otherTenant }, (trx) =>
        trx.raw("insert into entity (tenant_id, entity_type, name, owner_api_key_id) values (?, 'context', 'keyed', ?)", [otherTenant, keyId]),
      ),
      SQLSTATE.foreignKeyViolation,
      "entity_owner_api_key_fkey",
    );
    const insertAuthor = (author: string | null, authorKey: string | null) =>
      withTenant(knex, { service: "content", tenantId }, (trx) =>
        trx.raw(
          `insert into entity_version (tenant_id, entity_id, version, previous_version, title, author_id, author_api_key_id, content_hash, valid_from)
           select tenant_id, entity_id, 2, 1, 'x', ?, ?, ?, now() from entity_version where tenant_id = ? and entity_id = ? and version = 1`,
          [author, authorKey, HASH, tenantId, entityId],
        ),
      );
    await rejectsWith(insertAuthor(null, null), SQLSTATE.checkViolation, "entity_version_author_check");
    await rejectsWith(insertAuthor(userId, keyId), SQLSTATE.checkViolation, "entity_version_author_check");
  });

  test("parallel updates with the same etag: exactly one succeeds, history stays gap-free", async () => {
    const { tenantId, userId, entityId } = await entityWithVersions(1);
    const attempts = await Promise.allSettled(
      Array.from({ length: 6 }, (_, i) =>
        addVersion(knex, tenantId, entityId, userId, { title: `racer ${i}`, expectedRowVersion: "1" }),
      ),
    );
    assert.equal(attempts.filter((a) => a.status === "fulfilled").length, 1);
    const versions = await withTenant(knex, { service: "content", tenantId }, (trx) =>
      trx.raw<{ rows: { version: number }[] }>(
        "select version from get_entity_history(?, ?)",
        [tenantId, entityId],
      ),
    );
    assert.deepEqual(versions.rows.map((r) => r.version), [2, 1]);
  });
});

describe("names (entity.name, entity_name)", () => {
  test("a slug, unique per tenant among live entities; two entities never hold a name at the same instant", async () => {
    const { tenantId, userId, entityId } = await entityWithVersions(1);
    const { id: other } = await createEntity(knex, tenantId, userId, { title: "other", name: "other" });
    const otherTenant = await createTenant(knex);
    await createEntity(knex, otherTenant, await createUser(knex, otherTenant, "editor"), { title: "other", name: "other" });
    await withTenant(knex, { service: "content", tenantId }, async (trx) => {
      const name = firstRow(await trx.raw<{ rows: { name: string }[] }>("select name from entity where tenant_id = ? and id = ?", [tenantId, entityId])).name;
      assert.equal(name, "v1", "named after the title by the fixture, as the service does");
      await trx.raw("savepoint s");
      for (const bad of ["", "-a", "a-", "A", "a_b", "x".repeat(65)]) {
        await rejectsWith(trx.raw("update entity set name = ? where tenant_id = ? and id = ?", [bad, tenantId, entityId]), SQLSTATE.checkViolation, "entity_name_check");
        await trx.raw("rollback to savepoint s");
      }
      await rejectsWith(trx.raw("update entity set name = 'other' where tenant_id = ? and id = ?", [tenantId, entityId]), SQLSTATE.uniqueViolation, "entity_name_key");
      await trx.raw("rollback to savepoint s");
      // Another period of `other` overlapping the open one of its holder.
      await rejectsWith(
        trx.raw("insert into entity_name (tenant_id, entity_id, name, valid_from) values (?, ?, 'other', now() - interval '1 day')", [tenantId, entityId]),
        SQLSTATE.exclusionViolation,
        "entity_name_no_overlap",
      );
      await trx.raw("rollback to savepoint s");
      // Deleted, `other` is free for a live entity (its period closed as the service closes it).
      await trx.raw("update entity set deleted_at = now() where tenant_id = ? and id = ?", [tenantId, other]);
      await trx.raw("update entity_name set valid_to = clock_timestamp() where tenant_id = ? and entity_id = ? and valid_to is null", [tenantId, other]);
      await trx.raw("update entity set name = 'other' where tenant_id = ? and id = ?", [tenantId, entityId]);
      await trx.raw("rollback to savepoint s");
      // History is immutable but for closing a period.
      await rejectsWith(trx.raw("update entity_name set name = 'x' where tenant_id = ?", [tenantId]), SQLSTATE.insufficientPrivilege);
      await trx.raw("rollback to savepoint s");
      await rejectsWith(trx.raw("delete from entity_name where tenant_id = ?", [tenantId]), SQLSTATE.insufficientPrivilege);
    });
  });
});

describe("labels (entity_label)", () => {
  test("a label has one current target and a non-overlapping history", async () => {
    const { tenantId, userId, entityId } = await entityWithVersions(3);
    await setLabel(knex, tenantId, entityId, "production", 1, userId, { protected: true });
    await setLabel(knex, tenantId, entityId, "production", 2, userId);
    await setLabel(knex, tenantId, entityId, "staging", 3, userId);

    await withTenant(knex, { service: "content", tenantId }, async (trx) => {
      const rows = await trx.raw<{ rows: { version: number; protected: boolean; open: boolean; valid_from: string }[] }>(
        `select version, protected, valid_to is null as open, valid_from::text from entity_label
         where tenant_id = ? and entity_id = ? and label = 'production' order by valid_from`,
        [tenantId, entityId],
      );
      assert.deepEqual(rows.rows.map((r) => [r.version, r.protected, r.open]), [[1, true, false], [2, true, true]]);
      // "What did production point to then?"
      const first = rows.rows[0];
      assert.ok(first);
      const asOf = await trx.raw<{ rows: { version: number }[] }>(
        `select version from entity_label where tenant_id = ? and entity_id = ? and label = 'production'
         and tstzrange(valid_from, valid_to) @> ?::timestamptz`,
        [tenantId, entityId, first.valid_from],
      );
      assert.deepEqual(asOf.rows.map((r) => r.version), [1]);
    });

    // A second current row for the same label.
    await rejectsWith(
      withTenant(knex, { service: "content", tenantId }, (trx) =>
        trx.raw("insert into entity_label (tenant_id, entity_id, label, version, valid_from) values (?, ?, 'production', 3, '2999-01-01')", [tenantId, entityId]),
      ),
      SQLSTATE.exclusionViolation,
      ["entity_label_no_overlap", "entity_label_current_key"],
    );
    // Overlapping history.
    await rejectsWith(
      withTenant(knex, { service: "content", tenantId }, (trx) =>
        trx.raw(
          `insert into entity_label (tenant_id, entity_id, label, version, valid_from, valid_to)
           select tenant_id, entity_id, label, 3, valid_from + interval '1 microsecond', valid_from + interval '2 microseconds'
           from entity_label where tenant_id = ? and entity_id = ? and label = 'production' and valid_to is not null`,
          [tenantId, entityId],
        ),
      ),
      SQLSTATE.exclusionViolation,
      "entity_label_no_overlap",
    );
    // Name pattern, and `latest` is implicit.
    for (const bad of ["Production", "prod uction", "latest", "x".repeat(37)]) {
      await rejectsWith(
        withTenant(knex, { service: "content", tenantId }, (trx) =>
          trx.raw("insert into entity_label (tenant_id, entity_id, label, version) values (?, ?, ?, 1)", [tenantId, entityId, bad]),
        ),
        SQLSTATE.checkViolation,
        "entity_label_label_check",
      );
    }
    // A label points at an existing version of the same entity.
    await rejectsWith(
      withTenant(knex, { service: "content", tenantId }, (trx) =>
        trx.raw("insert into entity_label (tenant_id, entity_id, label, version) values (?, ?, 'canary', 99)", [tenantId, entityId]),
      ),
      SQLSTATE.foreignKeyViolation,
      "entity_label_version_fkey",
    );
  });
});

describe("favorites and shares", () => {
  test("one unrevoked share per grantee; grantee shape checked", async () => {
    const { tenantId, userId, entityId } = await entityWithVersions(1);
    const other = await createUser(knex, tenantId, "viewer");
    await withTenant(knex, { service: "content", tenantId, userId }, async (trx) => {
      await trx.raw("insert into favorite (tenant_id, user_id, entity_id) values (?, ?, ?)", [tenantId, userId, entityId]);
      await trx.raw("insert into favorite (tenant_id, user_id, entity_id) values (?, ?, ?) on conflict do nothing", [tenantId, userId, entityId]);
      await trx.raw(
        "insert into share (tenant_id, entity_id, grantee_type, grantee_user_id, permission, created_by) values (?, ?, 'user', ?, 'view', ?)",
        [tenantId, entityId, other, userId],
      );
      await trx.raw(
        "insert into share (tenant_id, entity_id, grantee_type, permission, created_by) values (?, ?, 'tenant', 'view', ?)",
        [tenantId, entityId, userId],
      );
    });
    await rejectsWith(
      withTenant(knex, { service: "content", tenantId }, (trx) =>
        trx.raw("insert into share (tenant_id, entity_id, grantee_type, permission) values (?, ?, 'tenant', 'edit')", [tenantId, entityId]),
      ),
      SQLSTATE.uniqueViolation,
      "share_grantee_key",
    );
    await rejectsWith(
      withTenant(knex, { service: "content", tenantId }, (trx) =>
        trx.raw("insert into share (tenant_id, entity_id, grantee_type, permission) values (?, ?, 'user', 'view')", [tenantId, entityId]),
      ),
      SQLSTATE.checkViolation,
      "share_grantee_check",
    );
    // Upsert on the grantee key updates the live share instead.
    const upserted = await withTenant(knex, { service: "content", tenantId }, (trx) =>
      trx.raw<{ rows: { permission: string }[] }>(
        `insert into share (tenant_id, entity_id, grantee_type, grantee_user_id, permission) values (?, ?, 'user', ?, 'edit')
         on conflict (tenant_id, entity_id, grantee_type, grantee_user_id) where revoked_at is null
         do update set permission = excluded.permission, updated_at = now() returning permission`,
        [tenantId, entityId, other],
      ),
    );
    assert.equal(firstRow(upserted).permission, "edit");
  });
});
