import { afterAll, beforeAll, describe, test } from "vitest";
import assert from "node:assert/strict";
import { withTenant, type Knex } from "@promptcraft/db";
import { createEntity } from "@promptcraft/content/fixtures";
import { createTenant, createUser, openTestKnex } from "@promptcraft/testing";
import type { Caller } from "../domain/access.js";
import * as store from "./relationships.js";
import * as walk from "./traversal.js";

/*
 * Store tier: graph's SQL on the test runner's database, as promptcraft_graph under row-level
 * security (inside withTenant), with tenants of its own; the isolation check runs the store bare
 * (as the table owner, whom RLS does not stop) so that it tests the store's own tenant conditions.
 */

let knex: Knex;
beforeAll(() => {
  knex = openTestKnex("graph-store-relationships");
});
afterAll(async () => {
  await knex.destroy();
});

async function arrange(n: number) {
  const tenantId = await createTenant(knex);
  const userId = await createUser(knex, tenantId, "editor");
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push((await createEntity(knex, tenantId, userId, { title: `n${i}`, visibility: "tenant" })).id);
  const caller: Caller = { tenantId, userId, role: "editor" };
  const insert = (source: string, target: string, type: store.RelationshipType = "depends_on") =>
    withTenant(knex, { service: "graph", tenantId, userId }, (trx) =>
      store.insertRelationship(trx, {
        tenantId,
        sourceId: source,
        targetId: target,
        type,
        strength: 1,
        metadata: {},
        targetVersion: null,
        targetLabel: null,
        createdBy: userId,
        createdByApiKeyId: null,
        requestId: null,
      }),
    );
  return { tenantId, userId, ids, caller, insert };
}

describe("store/relationships", () => {
  test("acyclicReach: cycle over mixed types, chain lengths above and below, on a lattice without enumerating paths", async () => {
    const { tenantId, ids, insert } = await arrange(1 + 5 * 5);
    // Layers of 5, each node linked to every node of the next layer: 5^4 paths from the top layer down.
    const layer = (i: number) => ids.slice(1 + i * 5, 6 + i * 5);
    for (let i = 0; i < 4; i++) for (const s of layer(i)) for (const d of layer(i + 1)) await insert(s, d, i % 2 ? "part_of" : "depends_on");
    await insert(ids[0]!, layer(0)[0]!);
    const reach = (source: string, target: string) => withTenant(knex, { service: "graph", tenantId }, (trx) => store.acyclicReach(trx, tenantId, source, target, 10));
    assert.deepEqual(await reach(layer(4)[0]!, ids[0]!), { cycle: true, below: 5, above: 5 }, "the bottom reaches the top through part_of and depends_on");
    assert.deepEqual(await reach(layer(4)[0]!, layer(4)[1]!), { cycle: false, below: 0, above: 5 });
    const path = await withTenant(knex, { service: "graph", tenantId }, (trx) => store.acyclicEdgesFrom(trx, tenantId, [ids[0]!]));
    assert.deepEqual(path, [{ source_id: ids[0], target_id: layer(0)[0] }]);
  });

  test("revisions: an update of strength or pin closes one and opens the next at the same instant; a delete closes the last", async () => {
    const { tenantId, userId, ids, insert } = await arrange(2);
    const created = await insert(ids[0]!, ids[1]!);
    const scope = { service: "graph" as const, tenantId, userId };
    const metadataOnly = await withTenant(knex, scope, async (trx) =>
      store.updateRelationship(trx, (await store.findRelationship(trx, tenantId, created.id, true))!, { strength: 1, metadata: { a: 1 }, targetVersion: null, targetLabel: null }),
    );
    assert.equal(metadataOnly.row_version, "2");
    const pinned = await withTenant(knex, scope, async (trx) =>
      store.updateRelationship(trx, (await store.findRelationship(trx, tenantId, created.id, true))!, { strength: 0.5, metadata: { a: 1 }, targetVersion: 1, targetLabel: null }),
    );
    await withTenant(knex, scope, async (trx) => store.deleteRelationship(trx, (await store.findRelationship(trx, tenantId, created.id, true))!));
    const { rows } = await knex.raw<{ rows: { revision: number; strength: number; target_version: number | null; valid_from: Date; valid_to: Date | null }[] }>(
      "select revision, strength, target_version, valid_from, valid_to from relationship_revision where tenant_id = ? and relationship_id = ? order by revision",
      [tenantId, created.id],
    );
    assert.deepEqual(rows.map((r) => [r.revision, r.strength, r.target_version]), [[1, 1, null], [2, 0.5, 1]], "metadata is not history");
    assert.equal(rows[0]!.valid_from.toISOString(), created.created_at.toISOString());
    assert.equal(rows[0]!.valid_to!.toISOString(), pinned.updated_at.toISOString());
    assert.equal(rows[1]!.valid_from.toISOString(), pinned.updated_at.toISOString());
    assert.ok(rows[1]!.valid_to !== null, "closed by the delete");
  });

  test("every statement names the tenant: run as the table owner, another tenant's edges stay out", async () => {
    const a = await arrange(2);
    const b = await arrange(1);
    await a.insert(a.ids[0]!, a.ids[1]!);
    const stranger: Caller = { ...b.caller, role: "owner" };
    assert.equal((await store.findEntities(knex as unknown as Knex.Transaction, stranger, a.ids)).size, 0);
    const listed = await store.listRelationships(knex as unknown as Knex.Transaction, stranger, { entityId: a.ids[0]!, outgoing: true, incoming: true, types: [], minStrength: 0, limit: 10 });
    assert.deepEqual(listed, []);
    const steps = await walk.step(knex as unknown as Knex.Transaction, stranger, { tenantId: b.tenantId, frontier: [a.ids[0]!], outgoing: true, incoming: true, types: [], minStrength: 0 });
    assert.deepEqual(steps, []);
    const resolved = await walk.resolveStep(knex as unknown as Knex.Transaction, stranger, [a.ids[0]!], ["depends_on"], new Date());
    assert.deepEqual(resolved, []);
    assert.equal((await walk.edgesAmong(knex as unknown as Knex.Transaction, b.tenantId, a.ids, [], 0)).length, 0);
  });
});
