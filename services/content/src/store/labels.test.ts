import { afterAll, beforeAll, describe, test } from "vitest";
import assert from "node:assert/strict";
import { withTenant, type Knex } from "@promptcraft/db";
import { createTenant, createUser, openTestKnex } from "@promptcraft/testing";
import { addVersion, createEntity, setLabel } from "../fixtures.js";
import * as store from "./labels.js";

/*
 * Store tier: the SQL of store/labels.ts on the test runner's database, with tenants of its own,
 * inside `withTenant` as promptcraft_content; the isolation check calls the store bare (as the table
 * owner, whom RLS does not stop) so that it tests the store's own `tenant_id` conditions.
 */

let knex: Knex;

beforeAll(() => {
  knex = openTestKnex("content-store-labels");
});
afterAll(async () => {
  await knex.destroy();
});

/** An entity with versions 1-3, `production` at 1 and `staging` at 2. */
async function arrange() {
  const tenantId = await createTenant(knex);
  const userId = await createUser(knex, tenantId, "owner");
  const { id: entityId } = await createEntity(knex, tenantId, userId, { title: "v1" });
  await addVersion(knex, tenantId, entityId, userId, { title: "v2" });
  await setLabel(knex, tenantId, entityId, "production", 1, userId);
  await setLabel(knex, tenantId, entityId, "staging", 2, userId);
  // The database's clock, to the microsecond (a DbTime): ordered exactly between the two writes.
  const between = (await knex.raw<{ rows: { t: Date }[] }>("select clock_timestamp() as t")).rows[0]!.t;
  await addVersion(knex, tenantId, entityId, userId, { title: "v3" });
  await setLabel(knex, tenantId, entityId, "staging", 3, userId);
  return { tenantId, userId, entityId, between };
}

describe("store/labels", () => {
  test("listLabels: the labels by name with `latest` as an implicit row, now or as of a time, paged by name", async () => {
    const { tenantId, userId, entityId, between } = await arrange();
    const list = (q: Partial<Parameters<typeof store.listLabels>[3]>) =>
      withTenant(knex, { service: "content", tenantId, userId }, (trx) => store.listLabels(trx, tenantId, entityId, { asOf: null, after: null, limit: 10, ...q }));
    const now = await list({});
    assert.deepEqual(
      now.map((l) => [l.label, l.version, l.protected, l.implicit, l.moved_by]),
      [
        ["latest", 3, false, true, null],
        ["production", 1, true, false, userId],
        ["staging", 3, false, false, userId],
      ],
      "production is protected by default (tenant_protected_labels)",
    );
    assert.deepEqual(Object.keys(now[0]!).sort(), ["implicit", "label", "moved_by", "moved_by_api_key_id", "protected", "valid_from", "version"]);
    const then = await list({ asOf: between });
    assert.deepEqual(then.map((l) => [l.label, l.version]), [["latest", 2], ["production", 1], ["staging", 2]]);
    const page = await list({ after: "latest", limit: 1 });
    assert.deepEqual(page.map((l) => l.label), ["production"]);
  });

  test("currentLabel, moveLabel and closeLabel keep one current row and a gap-free history", async () => {
    const { tenantId, userId, entityId } = await arrange();
    await withTenant(knex, { service: "content", tenantId, userId }, async (trx) => {
      const staging = await store.currentLabel(trx, tenantId, entityId, "staging");
      assert.deepEqual([staging?.version, staging?.implicit], [3, false]);
      const moved = await store.moveLabel(trx, { tenantId, entityId, label: "staging", version: 1, protected: false, movedBy: { kind: "user", id: userId } });
      assert.ok(moved.valid_from.getTime() >= staging!.valid_from.getTime());
      const closedAt = await store.closeLabel(trx, tenantId, entityId, "staging");
      assert.ok(closedAt);
      assert.equal(await store.currentLabel(trx, tenantId, entityId, "staging"), undefined);
      assert.equal(await store.closeLabel(trx, tenantId, entityId, "staging"), undefined, "nothing left to close");
      const { rows } = await trx.raw<{ rows: { gaps: number }[] }>(
        `select count(*)::int as gaps from (
           select valid_to, lead(valid_from) over (order by valid_from) as next_from
           from entity_label where tenant_id = ? and entity_id = ? and label = 'staging') h
         where next_from is not null and next_from <> valid_to`,
        [tenantId, entityId],
      );
      assert.equal(rows[0]!.gaps, 0);
    });
  });

  test("every query names its tenant: another tenant's id finds and changes nothing, even where RLS would not stop it", async () => {
    const { entityId } = await arrange();
    const other = await createTenant(knex);
    await knex.transaction(async (trx) => {
      assert.deepEqual(await store.listLabels(trx, other, entityId, { asOf: null, after: null, limit: 10 }), []);
      assert.equal(await store.currentLabel(trx, other, entityId, "production"), undefined);
      assert.equal(await store.closeLabel(trx, other, entityId, "production"), undefined);
      assert.equal(await store.versionExists(trx, other, entityId, 1), false);
      assert.deepEqual(await store.listLabelEvents(trx, other, entityId, { label: null, beforeId: null, limit: 10 }), []);
    });
  });
});
