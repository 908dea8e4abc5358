import { afterAll, beforeAll, describe, test } from "vitest";
import assert from "node:assert/strict";
import { withTenant, type Knex } from "@promptcraft/db";
import { createTenant, createUser, openTestKnex } from "@promptcraft/testing";
import type { Caller } from "../domain/access.js";
import { addVersion, createEntity, setLabel } from "../fixtures.js";
import * as store from "./entities.js";

/*
 * Store tier: the SQL of store/entities.ts on the test runner's database (PostgreSQL or the embedded
 * engine), with tenants of its own, arranged with content's fixtures (which write through the store
 * too). Reads run inside `withTenant` as promptcraft_content, the way the domain runs them; the
 * isolation check calls the store bare (as the table owner, whom RLS does not stop) so that it tests
 * the store's own `tenant_id` conditions.
 */

let knex: Knex;

beforeAll(() => {
  knex = openTestKnex("content-store-entities");
});
afterAll(async () => {
  await knex.destroy();
});

/** A tenant with an owner, an editor and a viewer, and one private entity of the owner. */
async function arrange() {
  const tenantId = await createTenant(knex);
  const [owner, editor, viewer] = [await createUser(knex, tenantId, "owner"), await createUser(knex, tenantId, "editor"), await createUser(knex, tenantId, "viewer")];
  const callers = {
    owner: { tenantId, userId: owner, role: "owner" } satisfies Caller,
    editor: { tenantId, userId: editor, role: "editor" } satisfies Caller,
    viewer: { tenantId, userId: viewer, role: "viewer" } satisfies Caller,
  };
  const { id: privateId } = await createEntity(knex, tenantId, editor, { title: "private" });
  return { tenantId, callers, privateId };
}

const read = <T>(caller: Caller, work: (trx: Knex.Transaction) => Promise<T>) =>
  withTenant(knex, { service: "content", tenantId: caller.tenantId, userId: caller.userId ?? null }, work);

describe("store/entities", () => {
  test("findVisibleEntities returns only what the caller may view, with their permission rank", async () => {
    const { tenantId, callers, privateId } = await arrange();
    const { id: shared } = await createEntity(knex, tenantId, callers.editor.userId, { title: "for the tenant", visibility: "tenant" });
    const ids = [privateId, shared];
    const asEditor = await read(callers.editor, (trx) => store.findVisibleEntities(trx, callers.editor, ids, { full: false, showDeleted: false }));
    assert.deepEqual(asEditor.map((r) => [r.id, r.permission]).sort(), [[privateId, 3], [shared, 3]].sort(), "the owner of both: admin");
    const asViewer = await read(callers.viewer, (trx) => store.findVisibleEntities(trx, callers.viewer, ids, { full: false, showDeleted: false }));
    assert.deepEqual(asViewer.map((r) => [r.id, r.permission]), [[shared, 1]], "a viewer sees the tenant-visible one only, to view");
    assert.equal(asViewer[0]!.content, null, "the basic view leaves content out");
  });

  test("findVisibleEntities leaves deleted entities out unless asked", async () => {
    const { callers, privateId } = await arrange();
    await read(callers.editor, (trx) => store.setDeleted(trx, callers.editor.tenantId, privateId, { deletedBy: callers.editor.userId, purgeAfterMs: 60_000 }));
    const live = await read(callers.editor, (trx) => store.findVisibleEntities(trx, callers.editor, [privateId], { full: true, showDeleted: false }));
    assert.deepEqual(live, []);
    const all = await read(callers.editor, (trx) => store.findVisibleEntities(trx, callers.editor, [privateId], { full: true, showDeleted: true }));
    assert.deepEqual(all.map((r) => [r.id, r.deleted_at !== null, r.purge_time !== null]), [[privateId, true, true]]);
  });

  test("findEntityVersion reads a version, a label's target, or none; labels as of the version", async () => {
    const { callers, privateId } = await arrange();
    await addVersion(knex, callers.editor.tenantId, privateId, callers.editor.userId, { title: "v2" });
    await setLabel(knex, callers.editor.tenantId, privateId, "production", 1, callers.editor.userId);
    const find = (selector: store.VersionSelector) => read(callers.editor, (trx) => store.findEntityVersion(trx, callers.editor, privateId, selector, true));
    assert.deepEqual([(await find({ kind: "current" }))?.title, (await find({ kind: "current" }))?.version], ["v2", 2]);
    const production = await find({ kind: "label", label: "production" });
    assert.deepEqual([production?.version, production?.title, production?.labels], [1, "private", ["production"]]);
    assert.equal((await find({ kind: "version", version: 9 }))?.version, null, "the entity, without a version");
  });

  test("every query names its tenant: another tenant's caller finds nothing, even where RLS would not stop it", async () => {
    const { callers, privateId } = await arrange();
    const other = await createTenant(knex);
    const stranger: Caller = { tenantId: other, userId: await createUser(knex, other, "owner"), role: "owner" };
    await knex.transaction(async (trx) => {
      assert.deepEqual(await store.findVisibleEntities(trx, stranger, [privateId], { full: true, showDeleted: true }), []);
      assert.equal(await store.findEntityVersion(trx, stranger, privateId, { kind: "current" }, true), undefined);
      const filter: store.EntityFilter = { types: [], tagsAny: [], tagsAll: [], statuses: [], owner: undefined, visibility: undefined, favoritesOnly: false, titlePrefix: "", name: "", namePrefix: "", showDeleted: true };
      assert.deepEqual(await store.listEntities(trx, stranger, filter, { key: "update_time", desc: true }, { limit: 10, full: false }), []);
    });
    const mine = await read(callers.owner, (trx) => store.findVisibleEntities(trx, callers.owner, [privateId], { full: false, showDeleted: false }));
    assert.equal(mine.length, 1);
  });
});
