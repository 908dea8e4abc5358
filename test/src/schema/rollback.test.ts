import { describe, test } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { createKnex, migrateDown, migrateUp, migrationStatus, startEmbeddedPostgres, type Knex } from "@promptcraft/db";
import { SCHEMA_SLICES } from "@promptcraft/cli";
import { migrations as contentMigrations } from "@promptcraft/content/migrations";
import { createTenant, createUser } from "@promptcraft/testing";
import { databaseUrl, firstRow } from "./support.js";

/** A scratch database of our own: never the shared DATABASE_URL one. */
interface Scratch {
  url: string;
  drop(): Promise<void>;
}

/** True when the server is the embedded engine (PGlite: PostgreSQL compiled to WASM). */
async function isEmbedded(url: string): Promise<boolean> {
  const knex = createKnex({ url, poolMax: 1 });
  try {
    const version = firstRow(await knex.raw<{ rows: { version: string }[] }>("select version() as version")).version;
    return /wasm|emscripten|pglite/i.test(version);
  } finally {
    await knex.destroy();
  }
}

/** A fresh database on the same server (CREATE DATABASE), dropped afterwards. */
async function scratchOnServer(url: string): Promise<Scratch> {
  const name = `pc_rollback_${randomUUID().replace(/-/g, "").slice(0, 12)}`;
  const admin = createKnex({ url, poolMax: 1 });
  await admin.raw(`create database ${name}`);
  const scratchUrl = new URL(url);
  scratchUrl.pathname = `/${name}`;
  return {
    url: scratchUrl.toString(),
    async drop() {
      try {
        await admin.raw(`drop database if exists ${name} with (force)`);
      } finally {
        await admin.destroy();
      }
    },
  };
}

/** A separate in-memory embedded engine in this process, served over the wire protocol. */
async function scratchEmbedded(): Promise<Scratch> {
  const engine = await startEmbeddedPostgres({ port: 0 });
  return { url: engine.url, drop: () => engine.stop() };
}

async function userObjects(knex: Knex): Promise<string[]> {
  const rows = await knex.raw<{ rows: { name: string }[] }>(
    `select c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where n.nspname = 'public' and c.relkind in ('r', 'p', 'v', 'm', 'S')
       and c.relname not like '%\\_migrations' and c.relname not like '%\\_migrations\\_lock'
       and c.relname not like '%\\_migrations\\_id\\_seq' and c.relname not like '%\\_migrations\\_lock\\_index\\_seq'
     union all
     select p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace
     where n.nspname = 'public'
       and not exists (select 1 from pg_depend d where d.objid = p.oid and d.deptype = 'e')
     order by 1`,
  );
  return rows.rows.map((r) => r.name);
}

/**
 * The backfill of entity names (20261206220000_add_entity_names) on entities that existed before
 * names: taken back down, entities written without names, then up again. Names come from titles,
 * unique per tenant (oldest first keeps the plain slug), held from creation until deletion; an
 * entity without versions is named too.
 */
async function checkNameBackfill(knex: Knex): Promise<void> {
  const addNames = contentMigrations.find((m) => m.name === "20261206220000_add_entity_names")!;
  await addNames.down(knex);
  const [a, b] = [await createTenant(knex), await createTenant(knex)];
  const [userA, userB] = [await createUser(knex, a), await createUser(knex, b)];
  const ids: string[] = [];
  const write = async (tenantId: string, owner: string, title: string | null, minute: number, deleted = false) => {
    const at = `2026-01-01T00:${String(minute).padStart(2, "0")}:00Z`;
    const id = randomUUID();
    await knex.raw(
      `insert into entity (tenant_id, id, entity_type, owner_id, created_at, updated_at, deleted_at, purge_time)
       values (?, ?, 'context', ?, ?::timestamptz, ?::timestamptz, ?::timestamptz, ?::timestamptz)`,
      [tenantId, id, owner, at, at, deleted ? "2026-01-02T00:00:00Z" : null, deleted ? "2026-02-01T00:00:00Z" : null],
    );
    // null: an entity without any version (written by hand; the backfill must still name it).
    if (title !== null) {
      await knex.raw(
        `insert into entity_version (tenant_id, entity_id, version, title, author_id, content_hash, valid_from)
         values (?, ?, 1, ?, ?, ?, ?::timestamptz)`,
        [tenantId, id, title, owner, "0".repeat(64), at],
      );
    }
    ids.push(id);
  };
  await write(a, userA, "Support Reply", 1);
  await write(a, userA, "support reply!", 2);
  await write(a, userA, "Support reply 2", 3);
  await write(a, userA, "Crème brûlée", 4, true);
  await write(a, userA, "日本語", 5);
  await write(b, userB, "Support Reply", 6);
  await write(b, userB, null, 7);
  await addNames.up(knex);
  const named = await knex.raw<{ rows: { id: string; name: string; periods: string }[] }>(
    `select e.id, e.name, string_agg(n.name || ' ' || to_char(n.valid_from at time zone 'UTC', 'MI') || '-' || coalesce(to_char(n.valid_to at time zone 'UTC', 'DD'), ''), ',') as periods
     from entity e join entity_name n on n.tenant_id = e.tenant_id and n.entity_id = e.id
     where e.id = any(?::uuid[]) group by e.id, e.name`,
    [ids],
  );
  const byId = new Map(named.rows.map((r) => [r.id, [r.name, r.periods]]));
  assert.deepEqual(
    ids.map((id) => byId.get(id)),
    [
      ["support-reply", "support-reply 01-"],
      ["support-reply-2", "support-reply-2 02-"],
      ["support-reply-2-2", "support-reply-2-2 03-"],
      ["creme-brulee", "creme-brulee 04-02"],
      ["entity", "entity 05-"],
      ["support-reply", "support-reply 06-"],
      ["entity", "entity 07-"],
    ],
  );
}

describe("migrations", () => {
  test("up is idempotent; down all, then up again, restores the same schema", { timeout: 300_000 }, async (t) => {
    const shared = databaseUrl();
    const scratch = (await isEmbedded(shared)) ? await scratchEmbedded() : await scratchOnServer(shared);
    const knex = createKnex({ url: scratch.url, poolMax: 2 });
    try {
      // pgvector is not a trusted extension: a non-superuser test role cannot create it in a new
      // database (CI and the embedded engine run as superuser; elsewhere an administrator adds
      // `vector` to template1 to run this test).
      const vectorOk = await knex.raw("create extension if not exists vector").then(
        () => true,
        (e: { code?: string }) => {
          if (e.code === "42501") return false;
          throw e;
        },
      );
      if (!vectorOk) {
        t.skip("this role may not create the vector extension in a scratch database");
        return;
      }
      const first = await migrateUp(knex, SCHEMA_SLICES);
      assert.ok(first.every((s) => s.applied.length > 0), "every slice applies something");
      const objects = await userObjects(knex);
      for (const expected of ["tenant", "entity_version", "relationship", "embedding", "usage_event", "event",
        "entity_stats", "get_entity_history", "relationship_revision", "search_similar_entities", "refresh_read_model"]) {
        assert.ok(objects.includes(expected), `${expected} missing after up`);
      }

      const again = await migrateUp(knex, SCHEMA_SLICES);
      assert.ok(again.every((s) => s.applied.length === 0), "a second up is a no-op");
      const status = await migrationStatus(knex, SCHEMA_SLICES);
      assert.ok(status.every((s) => s.pending.length === 0));

      await checkNameBackfill(knex);

      const reverted = await migrateDown(knex, SCHEMA_SLICES, { all: true });
      assert.deepEqual(reverted.map((s) => s.slice), ["analytics", "search", "graph", "content", "identity", "core"]);
      assert.deepEqual(await userObjects(knex), [], "down all leaves nothing of ours behind");

      await migrateUp(knex, SCHEMA_SLICES);
      assert.deepEqual(await userObjects(knex), objects, "up after down restores the same objects");
    } finally {
      await knex.destroy();
      await scratch.drop();
    }
  });
});
