import { afterAll, beforeAll, describe, test } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { withServiceRole, withTenant, type Knex } from "@promptcraft/db";
import { createTenant, createUser, openTestKnex } from "@promptcraft/testing";
import * as store from "./housekeeping.js";

/*
 * Store tier: the SQL of store/housekeeping.ts on the test runner's database. The sweep runs in one
 * `withServiceRole` transaction and enters each tenant in turn (`enterTenant`), so the tests do the
 * same; the isolation check calls the store bare (as the table owner, whom RLS does not stop) so
 * that it tests the store's own `tenant_id` conditions. Old rows are made old by hand, as the owner.
 */

let knex: Knex;
const DAY_MS = 86_400_000;

beforeAll(() => {
  knex = openTestKnex("identity-store-housekeeping");
});
afterAll(async () => {
  await knex.destroy();
});

/** A tenant with an invitation, a session and an API key retry secret, all long past, and fresh ones of each. */
async function arrange() {
  const tenantId = await createTenant(knex);
  const userId = await createUser(knex, tenantId);
  const invitee = await createUser(knex, tenantId);
  await knex.raw(
    `insert into invitation (tenant_id, user_id, token_hash, created_at, expires_at) values
       (?, ?, ?, now() - interval '60 days', now() - interval '53 days'),
       (?, ?, ?, now(), now() + interval '7 days')`,
    [tenantId, invitee, `old-${randomUUID()}`.padEnd(40, "x"), tenantId, userId, `new-${randomUUID()}`.padEnd(40, "x")],
  );
  const [oldSession, liveSession] = [randomUUID(), randomUUID()];
  await knex.raw(
    `insert into session (tenant_id, id, family_id, generation, user_id, refresh_token_hash, auth_method, created_at, expires_at, absolute_expires_at) values
       (?, ?, ?, 0, ?, ?, 'password', now() - interval '90 days', now() - interval '80 days', now() - interval '60 days'),
       (?, ?, ?, 0, ?, ?, 'password', now(), now() + interval '1 day', now() + interval '30 days')`,
    [tenantId, oldSession, oldSession, userId, `h-${oldSession}`, tenantId, liveSession, liveSession, userId, `h-${liveSession}`],
  );
  const [oldKey, newKey] = [randomUUID(), randomUUID()];
  await knex.raw(
    `insert into api_key (tenant_id, id, name, prefix, secret_hash, role, retry_secret, created_at) values
       (?, ?, 'old', 'pck_oldoldol', ?, 'viewer', 'sealed-retry-secret-ciphertext', now() - interval '20 minutes'),
       (?, ?, 'new', 'pck_newnewne', ?, 'viewer', 'sealed-retry-secret-ciphertext', now())`,
    [tenantId, oldKey, `s-${oldKey}`, tenantId, newKey, `s-${newKey}`],
  );
  return { tenantId, liveSession, newKey, oldKey };
}

describe("store/housekeeping", () => {
  test("a tenant's ended sessions, expired invitations and spent retry secrets go; live ones stay", async () => {
    const { tenantId, liveSession, newKey, oldKey } = await arrange();
    const now = Date.now();
    const counts = await withServiceRole(knex, "identity", async (trx) => {
      await store.enterTenant(trx, tenantId);
      return {
        invitations: await store.pruneInvitations(trx, tenantId, new Date(now - 30 * DAY_MS)),
        sessions: await store.pruneSessions(trx, tenantId, new Date(now - 30 * DAY_MS)),
        retrySecrets: await store.clearRetrySecrets(trx, tenantId, new Date(now - 10 * 60_000)),
      };
    });
    assert.deepEqual(counts, { invitations: 1, sessions: 1, retrySecrets: 1 });
    const left = await withTenant(knex, { service: "identity", tenantId }, async (trx) => ({
      sessions: (await trx.raw<{ rows: { id: string }[] }>("select id from session where tenant_id = ?", [tenantId])).rows.map((r) => r.id),
      invitations: (await trx.raw<{ rows: { n: number }[] }>("select count(*)::int as n from invitation where tenant_id = ?", [tenantId])).rows[0]!.n,
      secrets: (await trx.raw<{ rows: { id: string }[] }>("select id from api_key where tenant_id = ? and retry_secret is not null", [tenantId])).rows.map((r) => r.id),
    }));
    assert.deepEqual(left, { sessions: [liveSession], invitations: 1, secrets: [newKey] });
    assert.notEqual(oldKey, newKey);
  });

  test("tenants page by (created_at, id) through admin_list_tenants; the sweep lock is taken when free", async () => {
    const first = await withServiceRole(knex, "identity", (trx) => store.tenantIdsAfter(trx, undefined, 2));
    assert.equal(first.length, 2);
    const next = await withServiceRole(knex, "identity", (trx) => store.tenantIdsAfter(trx, { createdAt: first[1]!.created_at, id: first[1]!.id }, 2));
    assert.ok(next.every((t) => !first.some((f) => f.id === t.id)));
    // Contention needs two open transactions at once, which the embedded engine serialises; the
    // e2e housekeeping test runs two replicas against each other on PostgreSQL.
    const key = Math.floor(Math.random() * 2 ** 31);
    assert.equal(await withServiceRole(knex, "identity", (trx) => store.tryHousekeepingLock(trx, key)), true);
  });

  test("every tenant statement names its tenant: another tenant's id removes nothing, even where RLS would not stop it", async () => {
    const { tenantId } = await arrange();
    const other = await createTenant(knex);
    const past = new Date(Date.now() + DAY_MS); // a cutoff after everything: only the tenant condition holds rows back
    await knex.transaction(async (trx) => {
      assert.equal(await store.pruneInvitations(trx, other, past), 0);
      assert.equal(await store.pruneSessions(trx, other, past), 0);
      assert.equal(await store.clearRetrySecrets(trx, other, past), 0);
    });
    const kept = await withTenant(knex, { service: "identity", tenantId }, (trx) =>
      trx.raw<{ rows: { n: number }[] }>("select (select count(*) from session where tenant_id = ?)::int + (select count(*) from invitation where tenant_id = ?)::int as n", [tenantId, tenantId]),
    );
    assert.equal(kept.rows[0]!.n, 4);
  });
});
