import { afterAll, describe, test } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { withServiceRole, withTenant, type ServiceName } from "@promptcraft/db";
import { createEntity } from "@promptcraft/content/fixtures";
import { createTenant, createUser } from "@promptcraft/testing";
import { SQLSTATE, firstRow, openKnex, rejectsWith } from "./support.js";

const knex = openKnex();
afterAll(() => knex.destroy());

/** Two tenants, each with a user and an entity. */
async function twoTenants() {
  const a = await createTenant(knex);
  const b = await createTenant(knex);
  const userA = await createUser(knex, a, "owner");
  const userB = await createUser(knex, b, "owner");
  const entityA = (await createEntity(knex, a, userA, { title: "A's" })).id;
  const entityB = (await createEntity(knex, b, userB, { title: "B's" })).id;
  return { a, b, userA, userB, entityA, entityB };
}

describe("catalog: every tenant table is isolated and Citus-ready", () => {
  test("row-level security is enabled and forced on every table with a tenant_id (and on tenant)", async () => {
    const rows = await knex.raw<{ rows: { relname: string; relrowsecurity: boolean; relforcerowsecurity: boolean }[] }>(
      `select c.relname, c.relrowsecurity, c.relforcerowsecurity
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
       where n.nspname = 'public' and c.relkind in ('r', 'p')
         and (c.relname = 'tenant' or exists (
           select 1 from pg_attribute a where a.attrelid = c.oid and a.attname = 'tenant_id' and not a.attisdropped))`,
    );
    const names = rows.rows.map((r) => r.relname);
    for (const expected of ["tenant", "app_user", "session", "api_key", "oauth_identity", "entity", "entity_version",
      "entity_label", "favorite", "share", "relationship", "suggestion", "embedding", "embedding_job", "event", "usage_event"]) {
      assert.ok(names.includes(expected), `${expected} missing`);
    }
    const open = rows.rows.filter((r) => !r.relrowsecurity || !r.relforcerowsecurity).map((r) => r.relname);
    assert.deepEqual(open, [], "tables without enabled+forced RLS");
  });

  test("every primary key, unique index and foreign key of a tenant table starts with tenant_id", async () => {
    const constraints = await knex.raw<{ rows: { conname: string; first: string | null }[] }>(
      `select con.conname, a.attname as first
       from pg_constraint con
       join pg_class c on c.oid = con.conrelid
       join pg_namespace n on n.oid = c.relnamespace
       left join pg_attribute a on a.attrelid = con.conrelid and a.attnum = con.conkey[1]
       where n.nspname = 'public' and con.contype in ('p', 'u', 'f', 'x') and c.relkind in ('r', 'p')
         and not c.relispartition and c.relname <> 'tenant'
         and exists (select 1 from pg_attribute t where t.attrelid = c.oid and t.attname = 'tenant_id')`,
    );
    assert.ok(constraints.rows.length > 30);
    assert.deepEqual(constraints.rows.filter((r) => r.first !== "tenant_id").map((r) => r.conname), []);
    const indexes = await knex.raw<{ rows: { indexname: string; first: string | null }[] }>(
      `select i.relname as indexname, a.attname as first
       from pg_index x
       join pg_class i on i.oid = x.indexrelid
       join pg_class c on c.oid = x.indrelid
       join pg_namespace n on n.oid = c.relnamespace
       left join pg_attribute a on a.attrelid = c.oid and a.attnum = x.indkey[0]
       where n.nspname = 'public' and x.indisunique and c.relkind in ('r', 'p') and not c.relispartition
         and c.relname <> 'tenant'
         and exists (select 1 from pg_attribute t where t.attrelid = c.oid and t.attname = 'tenant_id')`,
    );
    assert.deepEqual(indexes.rows.filter((r) => r.first !== "tenant_id").map((r) => r.indexname), []);
  });
});

describe("catalog: no placeholder leaked into DDL", () => {
  test("constraints and indexes contain no $n (knex turns every ? of raw SQL into a placeholder)", async () => {
    const rows = await knex.raw<{ rows: { name: string }[] }>(
      `select con.conname as name from pg_constraint con join pg_namespace n on n.oid = con.connamespace
       where n.nspname = 'public' and pg_get_constraintdef(con.oid) ~ '[$][0-9]'
       union all
       select c.relname from pg_index x join pg_class c on c.oid = x.indexrelid join pg_namespace n on n.oid = c.relnamespace
       where n.nspname = 'public' and pg_get_indexdef(x.indexrelid) ~ '[$][0-9]'`,
    );
    assert.deepEqual(rows.rows.map((r) => r.name), []);
  });
});

describe("row-level security: another tenant's rows are invisible and unwritable", () => {
  test("entity: select, update, delete and insert across tenants", async () => {
    const { a, b, userA, entityB } = await twoTenants();
    await withTenant(knex, { service: "content", tenantId: a }, async (trx) => {
      const seen = await trx.raw<{ rows: { n: string; foreign: string }[] }>(
        "select count(*) as n, count(*) filter (where tenant_id <> ?) as foreign from entity",
        [a],
      );
      assert.equal(firstRow(seen).n, "1");
      assert.equal(firstRow(seen).foreign, "0");
      const byId = await trx.raw<{ rows: unknown[] }>("select id from entity where id = ?", [entityB]);
      assert.equal(byId.rows.length, 0);
      const versions = await trx.raw<{ rows: unknown[] }>("select version from entity_version where entity_id = ?", [entityB]);
      assert.equal(versions.rows.length, 0);
      const updated = await trx.raw<{ rowCount: number }>(
        "update entity set deleted_at = now() where tenant_id = ? and id = ?",
        [b, entityB],
      );
      assert.equal(updated.rowCount, 0);
      const deleted = await trx.raw<{ rowCount: number }>("delete from entity where id = ?", [entityB]);
      assert.equal(deleted.rowCount, 0);
    });
    // Inserting a row for another tenant is refused by the policy's WITH CHECK.
    const err = await rejectsWith(
      withTenant(knex, { service: "content", tenantId: a }, (trx) =>
        trx.raw("insert into entity (tenant_id, entity_type, owner_id) values (?, 'context', ?)", [b, userA]),
      ),
      SQLSTATE.insufficientPrivilege,
    );
    assert.match(err.message, /row-level security/);
    // Moving one's own row to another tenant is refused too.
    await rejectsWith(
      withTenant(knex, { service: "identity", tenantId: a }, (trx) =>
        trx.raw("update app_user set tenant_id = ? where tenant_id = ?", [b, a]),
      ),
      SQLSTATE.insufficientPrivilege,
    );
    // B still has its entity.
    const still = await withTenant(knex, { service: "content", tenantId: b }, (trx) =>
      trx.raw<{ rows: { deleted_at: Date | null }[] }>("select deleted_at from entity where id = ?", [entityB]),
    );
    assert.equal(firstRow(still).deleted_at, null);
  });

  test("every service's tables: foreign rows invisible, foreign inserts refused", async () => {
    const { a, b, userB, entityB } = await twoTenants();
    const entity2B = (await createEntity(knex, b, userB, { title: "B2" })).id;
    // Give tenant B one row in each service's tables.
    await withTenant(knex, { service: "graph", tenantId: b }, (trx) =>
      trx.raw("insert into relationship (tenant_id, source_id, target_id, relationship_type) values (?, ?, ?, 'depends_on')", [b, entityB, entity2B]),
    );
    await withTenant(knex, { service: "search", tenantId: b }, (trx) =>
      trx.raw("insert into embedding (tenant_id, entity_id, version, model, content_hash) values (?, ?, 1, 'm', 'h')", [b, entityB]),
    );
    await withTenant(knex, { service: "analytics", tenantId: b }, (trx) =>
      trx.raw("insert into usage_event (tenant_id, id, occurred_at, kind) values (?, ?, now(), 'view')", [b, randomUUID()]),
    );
    await withTenant(knex, { service: "identity", tenantId: b }, (trx) =>
      trx.raw("insert into event (tenant_id, aggregate_type, event_type) values (?, 'tenant', 'tenant.tested')", [b]),
    );

    const probes: { service: ServiceName; table: string }[] = [
      { service: "identity", table: "tenant" },
      { service: "identity", table: "app_user" },
      { service: "graph", table: "relationship" },
      { service: "search", table: "embedding" },
      { service: "analytics", table: "usage_event" },
      { service: "analytics", table: "event" },
    ];
    for (const { service, table } of probes) {
      const column = table === "tenant" ? "id" : "tenant_id";
      const rows = await withTenant(knex, { service, tenantId: a }, (trx) =>
        trx.raw<{ rows: unknown[] }>(`select 1 as one from ${table} where ${column} = ?`, [b]),
      );
      assert.equal(rows.rows.length, 0, `${service} sees ${table} rows of another tenant`);
      const own = await withTenant(knex, { service, tenantId: b }, (trx) =>
        trx.raw<{ rows: unknown[] }>(`select 1 as one from ${table} where ${column} = ?`, [b]),
      );
      assert.ok(own.rows.length > 0, `${service} must see its own tenant's ${table} rows`);
    }
    // Without a tenant in the transaction, nothing at all is visible.
    const none = await withServiceRole(knex, "content", (trx) => trx.raw<{ rows: unknown[] }>("select id from entity limit 1"));
    assert.equal(none.rows.length, 0);

    await rejectsWith(
      withTenant(knex, { service: "graph", tenantId: a }, (trx) =>
        trx.raw("insert into relationship (tenant_id, source_id, target_id, relationship_type) values (?, ?, ?, 'part_of')", [b, entity2B, entityB]),
      ),
      SQLSTATE.insufficientPrivilege,
    );
    await rejectsWith(
      withTenant(knex, { service: "analytics", tenantId: a }, (trx) =>
        trx.raw("insert into usage_event (tenant_id, id, occurred_at, kind) values (?, ?, now(), 'view')", [b, randomUUID()]),
      ),
      SQLSTATE.insufficientPrivilege,
    );
    await rejectsWith(
      withTenant(knex, { service: "content", tenantId: a }, (trx) =>
        trx.raw("insert into event (tenant_id, aggregate_type, event_type) values (?, 'entity', 'content.entity.created')", [b]),
      ),
      SQLSTATE.insufficientPrivilege,
    );
    await rejectsWith(
      withTenant(knex, { service: "identity", tenantId: a }, (trx) =>
        trx.raw("insert into tenant (id, slug, name) values (?, ?, 'x')", [randomUUID(), `x-${randomUUID().slice(0, 8)}`]),
      ),
      SQLSTATE.insufficientPrivilege,
    );
  });
});

describe("ownership: a service role cannot write another service's tables", () => {
  test("writes outside the service's own tables fail with 42501", async () => {
    const { a, userA, entityA } = await twoTenants();
    const attempts: { service: ServiceName; sql: string; bindings: string[] }[] = [
      { service: "content", sql: "insert into app_user (tenant_id, email, role) values (?, 'x@example.test', 'viewer')", bindings: [a] },
      { service: "content", sql: "update tenant set name = 'hijacked' where id = ?", bindings: [a] },
      { service: "identity", sql: "insert into entity (tenant_id, entity_type, owner_id) values (?, 'context', ?)", bindings: [a, userA] },
      { service: "graph", sql: "update entity set deleted_at = now() where tenant_id = ?", bindings: [a] },
      { service: "graph", sql: "delete from favorite where tenant_id = ?", bindings: [a] },
      { service: "search", sql: "insert into relationship (tenant_id, source_id, target_id, relationship_type) values (?, ?, ?, 'suggests')", bindings: [a, entityA, entityA] },
      { service: "search", sql: "update entity_version set valid_to = now() where tenant_id = ?", bindings: [a] },
      { service: "analytics", sql: "insert into embedding (tenant_id, entity_id, version, model, content_hash) values (?, ?, 1, 'm', 'h')", bindings: [a, entityA] },
      { service: "analytics", sql: "delete from usage_event where tenant_id = ?", bindings: [a] },
      { service: "content", sql: "insert into usage_event (tenant_id, id, occurred_at, kind) values (?, gen_random_uuid(), now(), 'view')", bindings: [a] },
      { service: "content", sql: "select id from event where tenant_id = ?", bindings: [a] },
      { service: "identity", sql: "update event set payload = '{}' where tenant_id = ?", bindings: [a] },
      { service: "content", sql: "select password_hash from app_user where tenant_id = ?", bindings: [a] },
      { service: "analytics", sql: "select tenant_id from entity_stats", bindings: [] },
    ];
    for (const { service, sql, bindings } of attempts) {
      await rejectsWith(
        withTenant(knex, { service, tenantId: a }, (trx) => trx.raw(sql, bindings)),
        SQLSTATE.insufficientPrivilege,
      ).catch((e: Error) => {
        throw new Error(`${service}: ${sql}: ${e.message}`);
      });
    }
  });

  test("each service writes its own tables and appends to the event log", async () => {
    const { a, userA } = await twoTenants();
    for (const service of ["identity", "content", "graph", "search", "analytics"] as const) {
      await withTenant(knex, { service, tenantId: a, userId: userA }, (trx) =>
        trx.raw("insert into event (tenant_id, aggregate_type, event_type, actor_id, payload) values (?, 'test', 'test.appended', ?, ?::jsonb)", [
          a,
          userA,
          JSON.stringify({ service }),
        ]),
      );
    }
    const rows = await withTenant(knex, { service: "analytics", tenantId: a }, (trx) =>
      trx.raw<{ rows: { recorded_by: string }[] }>(
        "select recorded_by from event where tenant_id = ? and event_type = 'test.appended' order by transaction_id, id",
        [a],
      ),
    );
    assert.deepEqual(rows.rows.map((r) => r.recorded_by), [
      "promptcraft_identity",
      "promptcraft_content",
      "promptcraft_graph",
      "promptcraft_search",
      "promptcraft_analytics",
    ]);
    // Other services may read the non-secret columns of their tenant and users (auth interceptor).
    const user = await withTenant(knex, { service: "graph", tenantId: a }, (trx) =>
      trx.raw<{ rows: { role: string; status: string }[] }>("select role, status from app_user where id = ?", [userA]),
    );
    assert.deepEqual(firstRow(user), { role: "owner", status: "active" });
  });
});
