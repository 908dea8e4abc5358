import { afterAll, beforeAll, describe, test } from "vitest";
import assert from "node:assert/strict";
import { withTenant, type Knex } from "@promptcraft/db";
import { createTenant, createUser, openTestKnex } from "@promptcraft/testing";
import { titleSlugSql } from "../../migrations/20261206220000_add_entity_names.js";
import type { Caller } from "../domain/access.js";
import { slugOf } from "../domain/names.js";
import { createEntity } from "../fixtures.js";
import * as entities from "./entities.js";
import * as names from "./names.js";

/*
 * Store tier: the SQL of store/names.ts on the test runner's database (PostgreSQL or the embedded
 * engine): resolving a name now and as of a time, renames and their history, names released by a
 * deleted entity, and tenants kept apart.
 */

let knex: Knex;

beforeAll(() => {
  knex = openTestKnex("content-store-names");
});
afterAll(async () => {
  await knex.destroy();
});

async function arrange() {
  const tenantId = await createTenant(knex);
  const userId = await createUser(knex, tenantId, "editor");
  const caller: Caller = { tenantId, userId, role: "owner" };
  return { tenantId, userId, caller };
}

const as = <T>(caller: Caller, work: (trx: Knex.Transaction) => Promise<T>) =>
  withTenant(knex, { service: "content", tenantId: caller.tenantId, userId: caller.userId ?? null }, work);

/** The id of the entity a name resolves to (now, or at `time`), through findEntityVersion as GetEntity reads it. */
function resolve(caller: Caller, name: string, time?: Date): Promise<string | undefined> {
  return as(caller, async (trx) => {
    const selector: entities.VersionSelector = time ? { kind: "as_of", time } : { kind: "current" };
    const row = await entities.findEntityVersion(trx, caller, names.entityIdOf(trx, caller.tenantId, { name }, time), selector, false);
    return row?.id;
  });
}

const pause = () => new Promise((r) => setTimeout(r, 5));

describe("store/names", () => {
  test("the migration's SQL slug of a title (which named existing entities) is domain/names.ts slugOf", async () => {
    const titles = ["Support Reply", "  Café — Crème brûlée!! ", "GPT-4 / system_prompt v2", "日本語", "---", `${"a".repeat(63)} b`, "Ärger über ß", "x".repeat(300), "1. Step", "İstanbul", "ﬁle ①"];
    const { rows } = await knex.raw<{ rows: { slug: string }[] }>(`select ${titleSlugSql("t.title")} as slug from unnest(?::text[]) with ordinality as t(title, i) order by t.i`, [titles]);
    assert.deepEqual(rows.map((r) => r.slug), titles.map(slugOf));
  });

  test("fixtures name entities after their titles, unique per tenant; namesLike finds the candidates", async () => {
    const { tenantId, userId, caller } = await arrange();
    const a = await createEntity(knex, tenantId, userId, { title: "Support Reply" });
    const b = await createEntity(knex, tenantId, userId, { title: "support reply!" });
    assert.deepEqual([a.name, b.name], ["support-reply", "support-reply-2"]);
    const taken = await as(caller, (trx) => names.namesLike(trx, tenantId, "support-reply"));
    assert.deepEqual([...taken].sort(), ["support-reply", "support-reply-2"]);
    assert.equal(await as(caller, (trx) => names.nameHolder(trx, tenantId, "support-reply")), a.id);
  });

  test("a name resolves to the live entity holding it now, and as of a time to the one that held it then", async () => {
    const { tenantId, userId, caller } = await arrange();
    const first = await createEntity(knex, tenantId, userId, { title: "x", name: "prompt" });
    await pause();
    const beforeRename = new Date();
    await pause();
    await as(caller, (trx) => names.renameEntity(trx, { tenantId, entityId: first.id, name: "prompt-old", by: { kind: "user", id: userId }, live: true }));
    const second = await createEntity(knex, tenantId, userId, { title: "y", name: "prompt" });
    await pause();
    const afterSecond = new Date();
    assert.equal(await resolve(caller, "prompt"), second.id);
    assert.equal(await resolve(caller, "prompt", beforeRename), first.id, "as of before the rename: the first entity");
    assert.equal(await resolve(caller, "prompt", afterSecond), second.id);
    assert.equal(await resolve(caller, "prompt-old"), first.id);
    assert.equal(await resolve(caller, "prompt-old", beforeRename), undefined, "nobody was named prompt-old then");
    assert.equal(await resolve(caller, "nobody"), undefined);

    const history = await as(caller, (trx) => names.listEntityNames(trx, tenantId, first.id, { limit: 10 }));
    assert.deepEqual(history.map((h) => [h.name, h.valid_to === null]), [["prompt-old", true], ["prompt", false]]);
    assert.equal(history[1]!.valid_to!.getTime(), history[0]!.valid_from.getTime(), "the rename closes one period and opens the next at the same instant");
    assert.equal(history[0]!.set_by, userId);
    const older = await as(caller, (trx) => names.listEntityNames(trx, tenantId, first.id, { before: history[0]!.sort_key, limit: 10 }));
    assert.deepEqual(older.map((h) => h.name), ["prompt"], "paging by the exact start");
  });

  test("a deleted entity releases its name: another may take it, and reads by name no longer find the deleted one", async () => {
    const { tenantId, userId, caller } = await arrange();
    const gone = await createEntity(knex, tenantId, userId, { title: "x", name: "shared-name" });
    await pause();
    const whileLive = new Date();
    await as(caller, async (trx) => {
      await entities.setDeleted(trx, tenantId, gone.id, { deletedBy: userId, purgeAfterMs: 60_000 });
      await names.closeEntityName(trx, tenantId, gone.id);
    });
    assert.equal(await resolve(caller, "shared-name"), undefined);
    assert.equal(await resolve(caller, "shared-name", whileLive), gone.id, "as of a time it held the name");
    const next = await createEntity(knex, tenantId, userId, { title: "y", name: "shared-name" });
    assert.equal(await resolve(caller, "shared-name"), next.id);
    // Restoring the deleted one under the same name is refused by the unique index.
    await assert.rejects(
      as(caller, (trx) => entities.setDeleted(trx, tenantId, gone.id, null)),
      (e: { code?: string; constraint?: string }) => e.code === "23505" && e.constraint === "entity_name_key",
    );
  });

  test("names are per tenant: the same name in two tenants, each resolving only its own", async () => {
    const one = await arrange();
    const two = await arrange();
    const a = await createEntity(knex, one.tenantId, one.userId, { title: "x", name: "same" });
    const b = await createEntity(knex, two.tenantId, two.userId, { title: "x", name: "same" });
    assert.equal(await resolve(one.caller, "same"), a.id);
    assert.equal(await resolve(two.caller, "same"), b.id);
    // Without row-level security (the table owner), the tenant condition alone still keeps them apart.
    await knex.transaction(async (trx) => {
      const row = await entities.findEntityVersion(trx, two.caller, names.entityIdOf(trx, two.tenantId, { name: "same" }), { kind: "current" }, false);
      assert.equal(row?.id, b.id);
      assert.deepEqual([...(await names.namesLike(trx, two.tenantId, "same"))], ["same"]);
      assert.deepEqual(await names.listEntityNames(trx, two.tenantId, a.id, { limit: 10 }), []);
    });
  });
});
