import { afterAll, beforeAll, describe, test } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { createKnex, type Knex } from "./knex.js";
import { dropTenantIsolationSql, tenantIsolationPolicyName, tenantIsolationSql } from "./rls.js";
import { withServiceRole, withTenant } from "./tenant.js";

test("tenantIsolationSql's text is frozen: migrations that embed it must stay what was applied", () => {
  // Changing this text would silently change every applied migration that used it on the next fresh
  // database. A different policy needs a new helper (and new migrations), never an edit here.
  assert.equal(
    tenantIsolationSql("note", { systemRead: true }),
    [
      "alter table note enable row level security;",
      "alter table note force row level security;",
      "create policy note_tenant_isolation on note using (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid) with check (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid);",
      "create policy note_system_read on note for select to promptcraft_system using (true);",
    ].join("\n"),
  );
});

test("tenantIsolationSql refuses what is not a plain identifier (it is pasted into SQL)", () => {
  assert.throws(() => tenantIsolationSql("note; drop table tenant"), /identifier/);
  assert.throws(() => tenantIsolationSql("note", { tenantColumn: "Tenant" }), /identifier/);
  assert.equal(tenantIsolationPolicyName("note"), "note_tenant_isolation");
});

// Schema tier: a table made with the helper on the migrated test database (the runner's DATABASE_URL,
// either engine), as a new migration would make it.
describe("a table created with tenantIsolationSql", () => {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error("DATABASE_URL must point to a migrated database (the test runner sets it)");
  const table = `rls_probe_${randomUUID().replace(/-/g, "").slice(0, 12)}`;
  const [tenantA, tenantB] = [randomUUID(), randomUUID()];
  let knex: Knex;

  beforeAll(async () => {
    knex = createKnex({ url, poolMax: 2, applicationName: "promptcraft-rls-test" });
    await knex.raw(`
      create table ${table} (tenant_id uuid not null, body text not null);
      ${tenantIsolationSql(table, { systemRead: true })}
      grant select, insert, update on ${table} to promptcraft_content;`);
  });
  afterAll(async () => {
    await knex.raw(`drop table if exists ${table}`);
    await knex.destroy();
  });

  test("has row-level security enabled and forced, and the tenant policy for reads and writes", async () => {
    const { rows: flags } = await knex.raw<{ rows: { enabled: boolean; forced: boolean }[] }>(
      "select relrowsecurity as enabled, relforcerowsecurity as forced from pg_class where oid = ?::regclass",
      [table],
    );
    assert.deepEqual(flags, [{ enabled: true, forced: true }]);
    const { rows: policies } = await knex.raw<{ rows: { policyname: string; cmd: string; roles: string; qual: string; with_check: string | null }[] }>(
      "select policyname, cmd, roles::text as roles, qual, with_check from pg_policies where tablename = ? order by policyname",
      [table],
    );
    assert.deepEqual(policies.map((p) => [p.policyname, p.cmd, p.roles]), [
      [`${table}_system_read`, "SELECT", "{promptcraft_system}"],
      [`${table}_tenant_isolation`, "ALL", "{public}"],
    ]);
    // The same expressions, as PostgreSQL deparses them, as the policies the applied migrations wrote out by hand.
    const { rows: reference } = await knex.raw<{ rows: { qual: string; with_check: string }[] }>(
      "select qual, with_check from pg_policies where policyname = 'invitation_tenant_isolation'",
    );
    assert.deepEqual([policies[1]!.qual, policies[1]!.with_check], [reference[0]!.qual, reference[0]!.with_check]);
    assert.match(policies[1]!.qual, /current_setting\('app\.tenant_id'::text, true\)/);
  });

  test("a service role sees and writes its own tenant's rows only; no tenant set sees nothing", async () => {
    await withTenant(knex, { service: "content", tenantId: tenantA }, (trx) => trx.raw(`insert into ${table} values (?, 'a')`, [tenantA]));
    await withTenant(knex, { service: "content", tenantId: tenantB }, (trx) => trx.raw(`insert into ${table} values (?, 'b')`, [tenantB]));
    const seen = await withTenant(knex, { service: "content", tenantId: tenantA }, (trx) => trx.raw<{ rows: { body: string }[] }>(`select body from ${table}`));
    assert.deepEqual(seen.rows, [{ body: "a" }]);
    await assert.rejects(
      withTenant(knex, { service: "content", tenantId: tenantA }, (trx) => trx.raw(`insert into ${table} values (?, 'smuggled')`, [tenantB])),
      (err: { code?: string }) => err.code === "42501",
      "a row of another tenant fails the policy's WITH CHECK",
    );
    const moved = await withTenant(knex, { service: "content", tenantId: tenantA }, (trx) => trx.raw<{ rowCount: number }>(`update ${table} set body = 'x' where tenant_id = ?`, [tenantB]));
    assert.equal(moved.rowCount, 0, "another tenant's rows cannot be updated: they are not there");
    const none = await withServiceRole(knex, "content", (trx) => trx.raw<{ rows: unknown[] }>(`select body from ${table}`));
    assert.deepEqual(none.rows, []);
  });

  test("dropTenantIsolationSql undoes it on a table that stays", async () => {
    const kept = `${table}_kept`;
    try {
      await knex.raw(`create table ${kept} (tenant_id uuid not null); ${tenantIsolationSql(kept)} ${dropTenantIsolationSql(kept)}`);
      const { rows } = await knex.raw<{ rows: { enabled: boolean; forced: boolean; policies: number }[] }>(
        "select relrowsecurity as enabled, relforcerowsecurity as forced, (select count(*)::int from pg_policies where tablename = ?) as policies from pg_class where oid = ?::regclass",
        [kept, kept],
      );
      assert.deepEqual(rows, [{ enabled: false, forced: false, policies: 0 }]);
    } finally {
      await knex.raw(`drop table if exists ${kept}`);
    }
  });
});
