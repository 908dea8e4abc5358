import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { withTenant } from "@promptcraft/db";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { EntityType, Permission } from "@promptcraft/proto/promptcraft/content/v1/resources_pb";
import { ContentHarness, ETAG_MISMATCH, failure, NOT_FOUND, ok, PROTOCOLS, type TestUser } from "./content-e2e-helpers.js";

/**
 * Real concurrency on PostgreSQL: many UpdateEntity calls at once. With one etag exactly one wins;
 * without etags all win in some serial order. Either way the history stays gap-free and fork-free,
 * and the schema's get_entity_history reads what the service wrote.
 */

const h = new ContentHarness();
beforeAll(() => h.start());
afterAll(() => h.close());

const M = ContentService.method;
const PARALLEL = 16;

interface HistoryRow {
  version: number;
  previous_version: number | null;
  title: string;
  valid_from: Date;
  valid_to: Date | null;
  is_current: boolean;
  labels: string[];
}

/** The schema's history function, run as the content role for the tenant. */
function history(tenantId: string, entityId: string): Promise<HistoryRow[]> {
  return withTenant(h.db, { service: "content", tenantId }, async (trx) => {
    const { rows } = await trx.raw<{ rows: HistoryRow[] }>("select * from get_entity_history(?, ?)", [tenantId, entityId]);
    return rows;
  });
}

/** Resolves once a backend waits for an entity row lock (PostgreSQL only: polls pg_stat_activity; a waiter of another test file can only make the wait shorter, never the test fail). */
async function waitForLockWaiter(): Promise<void> {
  for (let polls = 0; polls < 3000; polls++) {
    const { rows } = await h.db.raw<{ rows: unknown[] }>(
      "select 1 from pg_stat_activity where wait_event_type = 'Lock' and query like 'select 1 from entity where tenant_id = $1 and id = $2 for update%' and pid <> pg_backend_pid()",
    );
    if (rows.length > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error("no statement waited for an entity row lock: the write did not queue behind the lock holder");
}

/** Versions n..1 (newest first), each starting exactly when its predecessor ended, one current. */
function assertGapFreeAndForkFree(rows: HistoryRow[], n: number): void {
  assert.deepEqual(rows.map((r) => r.version), Array.from({ length: n }, (_, i) => n - i));
  for (const [i, row] of rows.entries()) {
    assert.equal(row.previous_version, row.version === 1 ? null : row.version - 1);
    assert.equal(row.is_current, i === 0);
    if (i > 0) assert.deepEqual(row.valid_to, rows[i - 1]!.valid_from, `version ${row.version} ends when ${row.version + 1} starts`);
  }
}

for (const protocol of PROTOCOLS) {
  describe(`concurrent updates over ${protocol}`, () => {
    test(`${PARALLEL} updates with the same etag: exactly one succeeds, the others are ABORTED`, async () => {
      const t = await h.tenantWith(["editor"]);
      const editor = t.users[0]!;
      const e = ok(await h.call(protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, title: "v1" } }, editor.token));
      const outcomes = await Promise.all(
        Array.from({ length: PARALLEL }, (_, i) =>
          h.call(protocol, M.updateEntity, { entity: { id: e.id, title: `writer ${i}`, etag: e.etag }, updateMask: { paths: ["title"] } }, editor.token),
        ),
      );
      const winners = outcomes.filter((o) => o.ok);
      assert.equal(winners.length, 1);
      for (const o of outcomes.filter((x) => !x.ok)) assert.deepEqual(failure(o), ETAG_MISMATCH);
      const rows = await history(t.tenantId, e.id);
      assertGapFreeAndForkFree(rows, 2);
      assert.equal(rows[0]!.title, ok(winners[0]!).title);
      assert.deepEqual(rows[0]!.labels, []);
      assert.equal((await h.events(t.tenantId, e.id)).filter((ev) => ev.event_type === "content.entity.updated").length, 1);
    });

    test("a write that waited for the entity lock is judged by the access at the time it gets the lock", async () => {
      const t = await h.tenantWith(["editor", "editor"]);
      const [owner, colleague] = t.users as [TestUser, TestUser];
      const e = ok(await h.call(protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, title: "v1" } }, owner.token));
      ok(await h.call(protocol, M.grantShare, { entityId: e.id, share: { grantee: { case: "userId", value: colleague.id }, permission: Permission.EDIT } }, owner.token));
      const edit = (title: string) => h.call(protocol, M.updateEntity, { entity: { id: e.id, title }, updateMask: { paths: ["title"] } }, colleague.token);
      ok(await edit("by the colleague, while shared"));

      // A change of the entity holds its row lock and revokes the share; the colleague's edit arrives meanwhile.
      const revoking = await h.db.transaction();
      let pending: ReturnType<typeof edit> | undefined;
      try {
        await revoking.raw("select 1 from entity where id = ? for update", [e.id]);
        await revoking.raw("update share set revoked_at = now() where entity_id = ? and grantee_user_id = ?", [e.id, colleague.id]);
        pending = edit("by the colleague, after the revoke");
        // On PostgreSQL, wait until the edit is queued on the lock (the embedded engine runs transactions one
        // after the other: there the edit simply starts after the commit).
        if (process.env.PROMPTCRAFT_TEST_DB_KIND !== "embedded") await waitForLockWaiter();
        await revoking.commit();
      } catch (err) {
        await revoking.rollback();
        throw err;
      }
      assert.deepEqual(failure(await pending), NOT_FOUND, "the share was gone when the edit got the lock");
      assert.equal(ok(await h.call(protocol, M.getEntity, { entityId: e.id }, owner.token)).title, "by the colleague, while shared");
    });

    test(`${PARALLEL} updates without etag: all succeed in some serial order, versions gap-free`, async () => {
      const t = await h.tenantWith(["editor"]);
      const editor = t.users[0]!;
      const e = ok(await h.call(protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, title: "v1" } }, editor.token));
      const outcomes = await Promise.all(
        Array.from({ length: PARALLEL }, (_, i) =>
          h.call(protocol, M.updateEntity, { entity: { id: e.id, title: `writer ${i}` }, updateMask: { paths: ["title"] } }, editor.token),
        ),
      );
      const versions = outcomes.map((o) => ok(o).version).sort((a, b) => a - b);
      assert.deepEqual(versions, Array.from({ length: PARALLEL }, (_, i) => i + 2));
      const rows = await history(t.tenantId, e.id);
      assertGapFreeAndForkFree(rows, PARALLEL + 1);
      // Each call's answer is the version it wrote.
      for (const o of outcomes) {
        const res = ok(o);
        assert.equal(rows.find((r) => r.version === res.version)!.title, res.title);
      }
      const current = ok(await h.call(protocol, M.getEntity, { entityId: e.id }, editor.token));
      assert.equal(current.version, PARALLEL + 1);
      assert.equal(current.etag, String(PARALLEL + 1));
      assert.equal((await h.events(t.tenantId, e.id)).filter((ev) => ev.event_type === "content.entity.updated").length, PARALLEL);
    });
  });
}
