import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { withTenant } from "@promptcraft/db";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { EntityType } from "@promptcraft/proto/promptcraft/content/v1/resources_pb";
import { ContentHarness, ETAG_MISMATCH, failure, ok, PROTOCOLS } from "./content-e2e-helpers.js";

/**
 * Real concurrency on PostgreSQL: many UpdateEntity calls at once. With one etag exactly one wins;
 * without etags all win in some serial order. Either way the history stays gap-free and fork-free,
 * and the schema's get_entity_history reads what the service wrote.
 */

const h = new ContentHarness();
before(() => h.start());
after(() => h.close());

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
      assert.equal((await h.events(t.tenantId, e.id)).filter((ev) => ev.event_type === "entity.updated").length, 1);
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
      assert.equal((await h.events(t.tenantId, e.id)).filter((ev) => ev.event_type === "entity.updated").length, PARALLEL);
    });
  });
}
