import { afterAll, beforeAll, describe, test } from "vitest";
import assert from "node:assert/strict";
import { createHash, randomUUID } from "node:crypto";
import { withServiceRole, withTenant, type Knex } from "@promptcraft/db";
import { createTenant, createUser, openTestKnex } from "@promptcraft/testing";
import * as store from "./sessions.js";

/*
 * Store tier: the SQL of store/sessions.ts on the real database the test runner provides
 * (DATABASE_URL: PostgreSQL, or the embedded engine), with tenants of its own. Calls run the way
 * the domain runs them — inside `withTenant` as promptcraft_identity, row-level security on — except
 * the isolation checks, which call the store bare (as the table owner, whom RLS does not stop) so
 * that they test the store's own `tenant_id` conditions.
 */

let knex: Knex;
const scope = (tenantId: string) => ({ service: "identity" as const, tenantId });

/** A session row of `userId`: a new family, or generation `generation` of `familyId`. */
async function insert(tenantId: string, userId: string, options: { familyId?: string; generation?: number; createdAt?: Date; expiresAt?: Date } = {}) {
  const id = randomUUID();
  const familyId = options.familyId ?? id;
  const createdAt = options.createdAt ?? new Date();
  await withTenant(knex, scope(tenantId), (trx) =>
    store.insertSession(trx, {
      tenantId,
      id,
      familyId,
      generation: options.generation ?? 0,
      userId,
      tokenHash: createHash("sha256").update(id).digest("hex"),
      authMethod: "password",
      oidcProviderId: null,
      expiresAt: options.expiresAt ?? new Date(createdAt.getTime() + 3_600_000),
      absoluteExpiresAt: new Date(createdAt.getTime() + 86_400_000),
      userAgent: "store-test",
      clientIp: "192.0.2.7",
      createdAt,
    }),
  );
  return { id, familyId, tokenHash: createHash("sha256").update(id).digest("hex") };
}

beforeAll(() => {
  knex = openTestKnex("identity-store-sessions");
});
afterAll(async () => {
  await knex.destroy();
});

describe("store/sessions", () => {
  test("a row reads back with its explicit columns: no token hash, the address as text", async () => {
    const tenantId = await createTenant(knex);
    const userId = await createUser(knex, tenantId);
    const { id } = await insert(tenantId, userId);
    const row = await withTenant(knex, scope(tenantId), (trx) => store.lockSessionRow(trx, tenantId, id));
    assert.ok(row);
    assert.equal("refresh_token_hash" in row, false);
    assert.deepEqual([row.family_id, row.generation, row.user_id, row.client_ip, row.user_agent, row.rotated_at], [id, 0, userId, "192.0.2.7", "store-test", null]);
  });

  test("a family reads as its newest token, started when its first was issued; rotation and revocation", async () => {
    const tenantId = await createTenant(knex);
    const userId = await createUser(knex, tenantId);
    const started = new Date(Date.now() - 60_000);
    const first = await insert(tenantId, userId, { createdAt: started });
    await withTenant(knex, scope(tenantId), (trx) => store.markRotated(trx, tenantId, first.id, new Date()));
    const second = await insert(tenantId, userId, { familyId: first.familyId, generation: 1 });
    const family = await withTenant(knex, scope(tenantId), (trx) => store.getFamily(trx, tenantId, first.familyId));
    assert.deepEqual([family?.id, family?.generation, family?.started_at.getTime()], [second.id, 1, started.getTime()]);

    const revoked = await withTenant(knex, scope(tenantId), (trx) => store.revokeFamily(trx, tenantId, first.familyId, "logout"));
    assert.equal(revoked, 2, "every token of the family");
    assert.equal(await withTenant(knex, scope(tenantId), (trx) => store.revokeFamily(trx, tenantId, first.familyId, "logout")), 0, "once");
    const ended = await withTenant(knex, scope(tenantId), (trx) => store.getFamily(trx, tenantId, first.familyId));
    assert.equal(ended?.revoked_reason, "logout");
  });

  test("listFamilies: newest first, keyset after a cursor, ended sessions only when asked", async () => {
    const tenantId = await createTenant(knex);
    const userId = await createUser(knex, tenantId);
    const now = Date.now();
    const families: string[] = [];
    for (let i = 0; i < 3; i++) families.push((await insert(tenantId, userId, { createdAt: new Date(now - (3 - i) * 1000) })).familyId);
    const expired = await insert(tenantId, userId, { createdAt: new Date(now - 10_000), expiresAt: new Date(now - 5_000) });
    const list = (options: Partial<Parameters<typeof store.listFamilies>[3]>) =>
      withTenant(knex, scope(tenantId), (trx) => store.listFamilies(trx, tenantId, userId, { includeInactive: false, limit: 10, after: undefined, ...options }));
    assert.deepEqual((await list({})).map((f) => f.family_id), [...families].reverse());
    assert.deepEqual((await list({ includeInactive: true })).map((f) => f.family_id), [...[...families].reverse(), expired.familyId]);
    const [newest] = await list({ limit: 1 });
    const rest = await list({ after: { startedAt: newest!.started_at.toISOString(), familyId: newest!.family_id } });
    assert.deepEqual(rest.map((f) => f.family_id), [families[1], families[0]]);
  });

  test("revokeUserSessions ends the user's sessions but the one kept, and names them", async () => {
    const tenantId = await createTenant(knex);
    const userId = await createUser(knex, tenantId);
    const other = await createUser(knex, tenantId);
    const [kept, ended] = [await insert(tenantId, userId), await insert(tenantId, userId)];
    const untouched = await insert(tenantId, other);
    const revoked = await withTenant(knex, scope(tenantId), (trx) => store.revokeUserSessions(trx, tenantId, userId, "password_changed", kept.familyId));
    assert.deepEqual(revoked, [ended.familyId]);
    const still = await withTenant(knex, scope(tenantId), async (trx) => [await store.getFamily(trx, tenantId, kept.familyId), await store.getFamily(trx, tenantId, untouched.familyId)]);
    assert.deepEqual(still.map((f) => f?.revoked_at ?? null), [null, null]);
  });

  test("the login lookups find across tenants (identity's definer functions); passwords", async () => {
    const tenantId = await createTenant(knex);
    const userId = await createUser(knex, tenantId, "editor", { email: "Holder@Example.test", passwordHash: "old-hash-of-twenty-chars-or-more" });
    const { familyId, tokenHash } = await insert(tenantId, userId);
    const found = await withServiceRole(knex, "identity", (trx) => store.findRefreshToken(trx, tokenHash));
    assert.deepEqual(found && [found.tenant_id, found.family_id, found.user_id], [tenantId, familyId, userId]);
    const user = await withServiceRole(knex, "identity", (trx) => store.findUserByEmail(trx, tenantId, "holder@example.test"));
    assert.equal(user?.id, userId);

    const before = await withTenant(knex, scope(tenantId), (trx) => store.findPasswordHolder(trx, tenantId, userId));
    assert.deepEqual(before, { id: userId, email: "Holder@Example.test", password_hash: "old-hash-of-twenty-chars-or-more" });
    const version = await withTenant(knex, scope(tenantId), (trx) => store.setPasswordHash(trx, tenantId, userId, "new-hash-of-twenty-chars-or-more"));
    assert.equal(version, "2");
    assert.equal((await withTenant(knex, scope(tenantId), (trx) => store.findPasswordHolder(trx, tenantId, userId)))?.password_hash, "new-hash-of-twenty-chars-or-more");
  });

  test("every query names its tenant: another tenant's id finds and changes nothing, even where RLS would not stop it", async () => {
    const tenantA = await createTenant(knex);
    const tenantB = await createTenant(knex);
    const userA = await createUser(knex, tenantA);
    const { id, familyId } = await insert(tenantA, userA);
    // Bare calls: the runner's user owns the tables and bypasses RLS, so only the WHERE clauses isolate.
    await knex.transaction(async (trx) => {
      assert.equal(await store.lockSessionRow(trx, tenantB, id), undefined);
      assert.equal(await store.getFamily(trx, tenantB, familyId), undefined);
      assert.deepEqual(await store.listFamilies(trx, tenantB, userA, { includeInactive: true, limit: 10, after: undefined }), []);
      assert.equal(await store.revokeFamily(trx, tenantB, familyId, "revoked"), 0);
      assert.deepEqual(await store.revokeUserSessions(trx, tenantB, userA, "revoked"), []);
      await store.markRotated(trx, tenantB, id, new Date());
      assert.equal(await store.findPasswordHolder(trx, tenantB, userA), undefined);
    });
    const row = await withTenant(knex, scope(tenantA), (trx) => store.lockSessionRow(trx, tenantA, id));
    assert.deepEqual([row?.rotated_at, row?.revoked_at], [null, null]);
  });
});
