import { afterAll, describe, test } from "vitest";
import assert from "node:assert/strict";
import { createHash, randomUUID } from "node:crypto";
import { withServiceRole, withTenant } from "@promptcraft/db";
import { createTenant, createUser, uniqueSlug } from "@promptcraft/testing";
import { SQLSTATE, firstRow, openKnex, rejectsWith } from "./support.js";

const knex = openKnex();
afterAll(() => knex.destroy());

const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

describe("identity tables", () => {
  test("slugs are validated and unique; emails unique per tenant, case-insensitively", async () => {
    for (const bad of ["A-b", "ab", "-abc", "abc-", "a_b_c", "x".repeat(64)]) {
      await rejectsWith(createTenant(knex, { slug: bad }), SQLSTATE.checkViolation, "tenant_slug_check");
    }
    const slug = uniqueSlug();
    await createTenant(knex, { slug });
    await rejectsWith(createTenant(knex, { slug }), SQLSTATE.uniqueViolation, "tenant_slug_key");

    const a = await createTenant(knex);
    const b = await createTenant(knex);
    await createUser(knex, a, "owner", { email: "Ada@Example.test" });
    await rejectsWith(createUser(knex, a, "viewer", { email: "ada@example.TEST" }), SQLSTATE.uniqueViolation, "app_user_email_key");
    await createUser(knex, b, "viewer", { email: "ada@example.test" }); // another tenant: fine
    await rejectsWith(createUser(knex, a, "root" as "owner"), SQLSTATE.checkViolation, "app_user_role_check");
    // A soft-deleted user's address can be used again.
    await withTenant(knex, { service: "identity", tenantId: a }, (trx) =>
      trx.raw("update app_user set deleted_at = now() where tenant_id = ? and lower(email) = 'ada@example.test'", [a]),
    );
    await createUser(knex, a, "viewer", { email: "ada@example.test" });
  });

  test("login lookups work before the tenant is known, for identity only", async () => {
    const slug = uniqueSlug();
    const tenantId = await createTenant(knex, { slug });
    const userId = await createUser(knex, tenantId, "admin", { email: "Grace@Example.test", passwordHash: "$scrypt$not-a-real-hash-but-long-enough" });
    const keyHash = sha256(`pck_${randomUUID()}`);
    const tokenHash = sha256(randomUUID());
    await withTenant(knex, { service: "identity", tenantId }, async (trx) => {
      await trx.raw(
        "insert into api_key (tenant_id, name, prefix, secret_hash, role, created_by) values (?, 'ci', ?, ?, 'editor', ?)",
        [tenantId, `pck_${randomUUID().slice(0, 8)}`, keyHash, userId],
      );
      const sid = randomUUID();
      await trx.raw(
        `insert into session (tenant_id, id, family_id, user_id, refresh_token_hash, expires_at, absolute_expires_at)
         values (?, ?, ?, ?, ?, now() + interval '1 day', now() + interval '30 days')`,
        [tenantId, sid, sid, userId, tokenHash],
      );
    });

    await withServiceRole(knex, "identity", async (trx) => {
      const tenant = await trx.raw<{ rows: { id: string; status: string }[] }>("select id, status from auth_find_tenant(?)", [slug.toUpperCase()]);
      assert.deepEqual(firstRow(tenant), { id: tenantId, status: "active" });
      const user = await trx.raw<{ rows: { id: string; role: string; password_hash: string }[] }>(
        "select id, role, password_hash from auth_find_user(?, ?)",
        [tenantId, "grace@example.TEST"],
      );
      assert.equal(firstRow(user).id, userId);
      assert.equal(firstRow(user).role, "admin");
      const key = await trx.raw<{ rows: { tenant_id: string; role: string; tenant_status: string }[] }>(
        "select tenant_id, role, tenant_status from auth_find_api_key(?)",
        [keyHash],
      );
      assert.deepEqual(firstRow(key), { tenant_id: tenantId, role: "editor", tenant_status: "active" });
      const session = await trx.raw<{ rows: { tenant_id: string; user_id: string }[] }>(
        "select tenant_id, user_id from auth_find_refresh_token(?)",
        [tokenHash],
      );
      assert.deepEqual(firstRow(session), { tenant_id: tenantId, user_id: userId });
      // RLS is not opened: without a tenant, identity itself sees no user rows.
      const direct = await trx.raw<{ rows: unknown[] }>("select id from app_user where tenant_id = ?", [tenantId]);
      assert.equal(direct.rows.length, 0);
    });
    for (const service of ["content", "graph", "search", "analytics"] as const) {
      await rejectsWith(
        withServiceRole(knex, service, (trx) => trx.raw("select id from auth_find_tenant(?)", [slug])),
        SQLSTATE.insufficientPrivilege,
      );
    }
    const definers = await knex.raw<{ rows: { proname: string; public_execute: boolean; config: string[] | null }[] }>(
      `select p.proname, has_function_privilege('public', p.oid, 'execute') as public_execute, p.proconfig as config
       from pg_proc p join pg_namespace n on n.oid = p.pronamespace
       where n.nspname = 'public' and p.prosecdef order by p.proname`,
    );
    assert.ok(definers.rows.length >= 8);
    for (const d of definers.rows) {
      assert.equal(d.public_execute, false, `${d.proname} is executable by PUBLIC`);
      assert.ok(d.config?.some((c) => c.startsWith("search_path=")), `${d.proname} has no pinned search_path`);
    }
  });

  test("refresh tokens: one live token per session family; suspended tenants carry a timestamp, active ones no suspend reason", async () => {
    const tenantId = await createTenant(knex);
    const userId = await createUser(knex, tenantId);
    const family = randomUUID();
    await rejectsWith(
      withTenant(knex, { service: "identity", tenantId }, async (trx) => {
        const insert = (id: string, generation: number) =>
          trx.raw(
            `insert into session (tenant_id, id, family_id, generation, user_id, refresh_token_hash, expires_at, absolute_expires_at)
             values (?, ?, ?, ?, ?, ?, now() + interval '1 day', now() + interval '30 days')`,
            [tenantId, id, family, generation, userId, sha256(id)],
          );
        await insert(family, 0);
        await insert(randomUUID(), 1); // generation 0 was not rotated: two live tokens
      }),
      SQLSTATE.uniqueViolation,
      "session_family_live_key",
    );
    await rejectsWith(
      withTenant(knex, { service: "identity", tenantId }, (trx) =>
        trx.raw("update tenant set status = 'suspended' where id = ?", [tenantId]),
      ),
      SQLSTATE.checkViolation,
      "tenant_suspended_at_check",
    );
    await rejectsWith(
      withTenant(knex, { service: "identity", tenantId }, (trx) =>
        trx.raw("update tenant set suspend_reason = 'unpaid' where id = ?", [tenantId]),
      ),
      SQLSTATE.checkViolation,
      "tenant_suspend_reason_check",
    );
  });

  test("at most one signing key is active", async () => {
    await assert.rejects(
      withServiceRole(knex, "identity", async (trx) => {
        const jwk = JSON.stringify({ kty: "OKP", crv: "Ed25519", x: "test" });
        const active = await trx.raw<{ rows: { n: string }[] }>(
          "select count(*) as n from signing_key where activated_at is not null and retired_at is null",
        );
        const insert = () =>
          trx.raw(
            "insert into signing_key (kid, algorithm, public_jwk, private_key, activated_at) values (?, 'EdDSA', ?::jsonb, 'pem', now())",
            [`test-${randomUUID()}`, jwk],
          );
        if (firstRow(active).n === "0") await insert();
        await rejectsWith(insert(), SQLSTATE.uniqueViolation, "signing_key_one_active_key");
        throw new Error("rollback marker"); // leave the shared table as it was
      }),
      /rollback marker|current transaction is aborted/,
    );
  });
});
