import { afterAll, beforeAll, describe, test } from "vitest";
import assert from "node:assert/strict";
import { createHash, randomUUID } from "node:crypto";
import { withTenant, type Knex } from "@promptcraft/db";
import { createTenant, createUser, openTestKnex } from "@promptcraft/testing";
import * as store from "./api-keys.js";

/*
 * Store tier: the SQL of store/api-keys.ts on the test runner's database, with tenants of its own,
 * inside `withTenant` as promptcraft_identity; the isolation check calls the store bare (as the
 * table owner, whom RLS does not stop) so that it tests the store's own `tenant_id` conditions.
 */

let knex: Knex;
const scope = (tenantId: string) => ({ service: "identity" as const, tenantId });

async function insert(
  tenantId: string,
  options: { createdBy?: string | null; createdByApiKeyId?: string | null; role?: store.ApiKeyRole; expiresAt?: Date | null; retrySecret?: string | null; id?: string } = {},
) {
  const id = options.id ?? randomUUID();
  const secretHash = createHash("sha256").update(`secret-${id}`).digest("hex");
  const row = await withTenant(knex, scope(tenantId), (trx) =>
    store.insertApiKey(trx, {
      tenantId,
      id,
      name: `key ${id.slice(0, 8)}`,
      prefix: `pck_${id.slice(0, 8)}`,
      secretHash,
      role: options.role ?? "editor",
      createdBy: options.createdBy ?? null,
      createdByApiKeyId: options.createdByApiKeyId ?? null,
      expiresAt: options.expiresAt ?? null,
      retrySecret: options.retrySecret ?? null,
    }),
  );
  return { id, secretHash, row };
}

beforeAll(() => {
  knex = openTestKnex("identity-store-api-keys");
});
afterAll(async () => {
  await knex.destroy();
});

describe("store/api-keys", () => {
  test("insert returns the row (never the hash); the same id again is a retry: undefined", async () => {
    const tenantId = await createTenant(knex);
    const creator = await createUser(knex, tenantId, "admin");
    const { id, row } = await insert(tenantId, { createdBy: creator });
    assert.deepEqual(row && [row.id, row.tenantId, row.role, row.createdBy, row.revokedAt], [id, tenantId, "editor", creator, null]);
    assert.equal("secretHash" in row!, false);
    assert.equal((await insert(tenantId, { id })).row, undefined);
    assert.deepEqual(await withTenant(knex, scope(tenantId), (trx) => store.getApiKey(trx, tenantId, id)), row);
  });

  test("list: newest first, keyset after a cursor, revoked and expired only when asked; revoke once", async () => {
    const tenantId = await createTenant(knex);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await insert(tenantId)).id);
    const expired = (await insert(tenantId, { expiresAt: new Date(Date.now() + 3_600_000) })).id;
    // Expired an hour ago (a key cannot be created expired: api_key_expiry_check), set as the table owner.
    await knex.raw("update api_key set created_at = now() - interval '2 hours', expires_at = now() - interval '1 hour' where tenant_id = ? and id = ?", [tenantId, expired]);
    const revoked = await withTenant(knex, scope(tenantId), (trx) => store.revokeApiKey(trx, tenantId, ids[0]!));
    assert.ok(revoked?.revokedAt);
    assert.equal(await withTenant(knex, scope(tenantId), (trx) => store.revokeApiKey(trx, tenantId, ids[0]!)), undefined, "already revoked");
    const list = (options: Partial<Parameters<typeof store.listApiKeys>[2]>) =>
      withTenant(knex, scope(tenantId), (trx) => store.listApiKeys(trx, tenantId, { limit: 10, showInactive: false, after: undefined, ...options }));
    const byAge = (rows: store.ApiKeyRow[]) => rows.map((r) => r.id);
    const active = await list({});
    assert.deepEqual(new Set(byAge(active)), new Set([ids[1], ids[2]]));
    const all = await list({ showInactive: true });
    assert.deepEqual(new Set(byAge(all)), new Set([...ids, expired]));
    for (let i = 1; i < all.length; i++) {
      const [a, b] = [all[i - 1]!, all[i]!];
      assert.ok(a.createdAt.getTime() > b.createdAt.getTime() || (a.createdAt.getTime() === b.createdAt.getTime() && a.id > b.id), "created_at, id descending");
    }
    const after = await list({ showInactive: true, after: { createdAt: all[1]!.createdAt.toISOString(), id: all[1]!.id } });
    assert.deepEqual(byAge(after), byAge(all.slice(2)));
  });

  test("quota counts unrevoked keys under the tenant's max_api_keys; no quota is no limit", async () => {
    const limited = await createTenant(knex, { quotas: { max_api_keys: 5 } });
    await insert(limited);
    const { id } = await insert(limited);
    await withTenant(knex, scope(limited), (trx) => store.revokeApiKey(trx, limited, id));
    assert.deepEqual(await withTenant(knex, scope(limited), (trx) => store.apiKeyQuota(trx, limited)), { max: 5, used: 1 });
    const open = await createTenant(knex);
    assert.deepEqual(await withTenant(knex, scope(open), (trx) => store.apiKeyQuota(trx, open)), { max: null, used: 0 });
  });

  test("the retry secret is found within its window only; use is recorded; the secret's hash finds the key across tenants", async () => {
    const tenantId = await createTenant(knex);
    const { id, secretHash } = await insert(tenantId, { retrySecret: "sealed-retry-secret-ciphertext" });
    assert.equal(await withTenant(knex, scope(tenantId), (trx) => store.findRetrySecret(trx, tenantId, id, 600)), "sealed-retry-secret-ciphertext");
    assert.equal(await withTenant(knex, scope(tenantId), (trx) => store.findRetrySecret(trx, tenantId, id, 0)), undefined);
    await store.touchApiKey(knex, tenantId, id);
    const used = await withTenant(knex, scope(tenantId), (trx) => store.getApiKey(trx, tenantId, id));
    assert.ok(used?.lastUsedAt);
    await store.touchApiKey(knex, tenantId, id);
    const again = await withTenant(knex, scope(tenantId), (trx) => store.getApiKey(trx, tenantId, id));
    assert.equal(again?.lastUsedAt?.getTime(), used.lastUsedAt.getTime(), "at most once a minute");
    const found = await store.findApiKeyBySecretHash(knex, secretHash);
    assert.deepEqual(found && [found.tenantId, found.id, found.effectiveRole, found.creatorsActive, found.tenantStatus], [tenantId, id, "editor", true, "active"]);
  });

  test("a key's effective role and activity follow its chain of creators (users' current role and status, keys' revocation and expiry)", async () => {
    const tenantId = await createTenant(knex);
    const user = await createUser(knex, tenantId, "admin");
    const top = await insert(tenantId, { createdBy: user, role: "admin" });
    const middle = await insert(tenantId, { createdByApiKeyId: top.id, role: "admin" });
    const bottom = await insert(tenantId, { createdByApiKeyId: middle.id, role: "editor" });
    const judged = async () =>
      Promise.all([top, middle, bottom].map(async (k) => {
        const found = (await store.findApiKeyBySecretHash(knex, k.secretHash))!;
        return `${found.effectiveRole}/${found.creatorsActive}`;
      }));
    const change = (sql: string, bindings: string[]) => withTenant(knex, scope(tenantId), (trx) => trx.raw(sql, bindings));

    assert.deepEqual(await judged(), ["admin/true", "admin/true", "editor/true"]);
    assert.equal(bottom.row?.createdByApiKeyId, middle.id);
    await change("update app_user set role = 'viewer' where id = ?", [user]);
    assert.deepEqual(await judged(), ["viewer/true", "viewer/true", "viewer/true"], "the user's role caps the whole chain");
    await change("update app_user set role = 'admin', status = 'deactivated' where id = ?", [user]);
    assert.deepEqual(await judged(), ["admin/false", "admin/false", "editor/false"], "a deactivated creator stops them all");
    await change("update app_user set status = 'active' where id = ?", [user]);
    await change("update api_key set expires_at = created_at + interval '1 microsecond' where id = ?", [middle.id]);
    assert.deepEqual(await judged(), ["admin/true", "admin/true", "editor/false"], "an expired creating key stops what it made (its own expiry is judged by the caller)");
    await change("update api_key set expires_at = null, revoked_at = now() where id = ?", [top.id]);
    assert.deepEqual(await judged(), ["admin/true", "admin/false", "editor/false"], "a revoked key stops everything below it");
    await change("update api_key set revoked_at = null where id = ?", [top.id]);
    await change("update app_user set deleted_at = now() where id = ?", [user]);
    assert.deepEqual(await judged(), ["admin/false", "admin/false", "editor/false"], "a deleted creator too");
    const orphan = await insert(tenantId, { role: "viewer" });
    assert.equal((await store.findApiKeyBySecretHash(knex, orphan.secretHash))?.creatorsActive, true, "no creator recorded: judged by itself");
  });

  test("every query names its tenant: another tenant's id finds and changes nothing, even where RLS would not stop it", async () => {
    const tenantA = await createTenant(knex);
    const tenantB = await createTenant(knex);
    const { id } = await insert(tenantA, { retrySecret: "sealed-retry-secret-ciphertext" });
    await knex.transaction(async (trx) => {
      assert.equal(await store.getApiKey(trx, tenantB, id), undefined);
      assert.deepEqual(await store.listApiKeys(trx, tenantB, { limit: 10, showInactive: true, after: undefined }), []);
      assert.equal(await store.findRetrySecret(trx, tenantB, id, 600), undefined);
      assert.equal(await store.revokeApiKey(trx, tenantB, id), undefined);
    });
    assert.equal((await withTenant(knex, scope(tenantA), (trx) => store.getApiKey(trx, tenantA, id)))?.revokedAt, null);
  });
});
