import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { withServiceRole, withTenant } from "@promptcraft/db";
import { HOUSEKEEPING_LOCK_KEY, keyEncryptionKey, RETENTION_MS, sweep } from "@promptcraft/identity";
import { createTenant, createUser } from "@promptcraft/testing";
import { IdentityHarness } from "./identity-e2e-helpers.js";

/**
 * Identity's housekeeping sweep, called directly (issue 3): what it deletes and what it keeps,
 * scheduled signing-key rotation, and one replica at a time. The database is shared with the other
 * test files, so the sweep runs at the real time and the rows to prune are back-dated.
 */

const h = new IdentityHarness();
beforeAll(() => h.start());
afterAll(() => h.close());

const DAY_MS = 86_400_000;
const SETTINGS = { rotationDays: 0, throttleWindowS: 900 };
const ago = (ms: number) => new Date(Date.now() - ms);
const hash = () => randomBytes(32).toString("hex");
/** The harness's identity runs with the development key-encryption key. */
const kek = keyEncryptionKey(undefined, undefined);

describe("identity housekeeping", { sequential: true }, () => {
  test("prunes ended sessions, expired invitations, stale throttles, expired keys and old retry secrets; keeps the rest", async () => {
    const tenantId = await createTenant(h.db);
    const userId = await createUser(h.db, tenantId, "editor");
    const family = async (opts: { absoluteAgoMs: number; revokedAgoMs?: number; rotatedRows?: number; lastExpiresInMs?: number }) => {
      const root = randomUUID();
      await withTenant(h.db, { service: "identity", tenantId }, async (trx) => {
        const absolute = ago(opts.absoluteAgoMs);
        const rows = (opts.rotatedRows ?? 0) + 1;
        for (let generation = 0; generation < rows; generation++) {
          const live = generation === rows - 1;
          const expires = live && opts.lastExpiresInMs !== undefined ? new Date(Date.now() + opts.lastExpiresInMs) : new Date(Math.min(absolute.getTime(), Date.now() - 40 * DAY_MS));
          await trx.raw(
            `insert into session (tenant_id, id, family_id, generation, user_id, refresh_token_hash, created_at, expires_at, absolute_expires_at, rotated_at, revoked_at, revoked_reason)
             values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
            [
              tenantId,
              generation === 0 ? root : randomUUID(),
              root,
              generation,
              userId,
              hash(),
              ago(90 * DAY_MS),
              expires > absolute ? absolute : expires,
              absolute,
              live ? null : ago(45 * DAY_MS),
              opts.revokedAgoMs === undefined ? null : ago(opts.revokedAgoMs),
              opts.revokedAgoMs === undefined ? null : "logout",
            ],
          );
        }
      });
      return root;
    };
    const expiredLongAgo = await family({ absoluteAgoMs: 31 * DAY_MS });
    const revokedLongAgo = await family({ absoluteAgoMs: -300 * DAY_MS, revokedAgoMs: 31 * DAY_MS, lastExpiresInMs: DAY_MS });
    const idleLongAgo = await family({ absoluteAgoMs: -300 * DAY_MS, rotatedRows: 1 });
    const revokedRecently = await family({ absoluteAgoMs: -300 * DAY_MS, revokedAgoMs: 2 * DAY_MS, lastExpiresInMs: DAY_MS });
    const liveWithOldRows = await family({ absoluteAgoMs: -300 * DAY_MS, rotatedRows: 3, lastExpiresInMs: DAY_MS });

    const invited = await createUser(h.db, tenantId, "viewer");
    const oldKey = randomUUID();
    await withTenant(h.db, { service: "identity", tenantId }, async (trx) => {
      await trx.raw("insert into invitation (tenant_id, user_id, token_hash, created_at, expires_at, revoked_at) values (?, ?, ?, ?, ?, ?)", [
        tenantId,
        invited,
        hash(),
        ago(40 * DAY_MS),
        ago(33 * DAY_MS),
        ago(39 * DAY_MS),
      ]);
      await trx.raw("insert into invitation (tenant_id, user_id, token_hash, expires_at) values (?, ?, ?, ?)", [tenantId, invited, hash(), new Date(Date.now() + 7 * DAY_MS)]);
      for (const [id, createdAgo] of [[oldKey, 11 * 60_000], [randomUUID(), 60_000]] as const) {
        await trx.raw(
          "insert into api_key (tenant_id, id, name, prefix, secret_hash, role, created_at, retry_secret) values (?, ?, 'k', ?, ?, 'viewer', ?, 'aes256gcm:v1:placeholder-ciphertext')",
          [tenantId, id, `pck_${randomBytes(6).toString("base64url")}`, hash(), ago(createdAgo)],
        );
      }
    });
    const staleAddress = `test-stale-${randomUUID()}`;
    const blockedAddress = `test-blocked-${randomUUID()}`;
    const expiredKid = `test-expired-${randomUUID()}`;
    await withServiceRole(h.db, "identity", async (trx) => {
      await trx.raw("insert into login_throttle (scope, key, failure_count, first_failure_at, last_failure_at, blocked_until) values ('address', ?, 9, ?, ?, null), ('address', ?, 9, ?, ?, ?)", [
        staleAddress,
        ago(2 * 3600_000),
        ago(2 * 3600_000),
        blockedAddress,
        ago(2 * 3600_000),
        ago(2 * 3600_000),
        new Date(Date.now() + 3600_000),
      ]);
      await trx.raw(
        "insert into signing_key (kid, algorithm, public_jwk, private_key, created_at, activated_at, retired_at, expires_at) values (?, 'EdDSA', '{}'::jsonb, 'x', ?, ?, ?, ?)",
        [expiredKid, ago(3 * DAY_MS), ago(3 * DAY_MS), ago(2 * DAY_MS), ago(2 * DAY_MS - 960_000)],
      );
    });

    const result = await sweep(h.db, kek, SETTINGS, new Date());
    assert.ok(result, "this replica swept");
    assert.equal(result.rotated, false);

    const left = await withTenant(h.db, { service: "identity", tenantId }, async (trx) => ({
      families: (await trx.raw<{ rows: { family_id: string; n: number }[] }>("select family_id, count(*)::int as n from session group by family_id")).rows,
      invitations: (await trx.raw<{ rows: { open: boolean }[] }>("select revoked_at is null as open from invitation")).rows,
      retry: (await trx.raw<{ rows: { id: string; kept: boolean }[] }>("select id, retry_secret is not null as kept from api_key")).rows,
    }));
    const families = new Map(left.families.map((f) => [f.family_id, f.n]));
    assert.equal(families.has(expiredLongAgo), false, "past its absolute expiry");
    assert.equal(families.has(revokedLongAgo), false, "revoked long ago");
    assert.equal(families.has(idleLongAgo), false, "no refresh token valid for long");
    assert.equal(families.get(revokedRecently), 1, "revoked recently: kept (its tokens are refused by it)");
    assert.equal(families.get(liveWithOldRows), 4, "a live session keeps its rotated rows (reuse detection)");
    assert.deepEqual(left.invitations, [{ open: true }]);
    assert.deepEqual(left.retry.map((k) => [k.id === oldKey, k.kept]).sort(), [[false, true], [true, false]]);
    const platform = await withServiceRole(h.db, "identity", async (trx) => ({
      throttles: (await trx.raw<{ rows: { key: string }[] }>("select key from login_throttle where key in (?, ?)", [staleAddress, blockedAddress])).rows.map((r) => r.key),
      keys: (await trx.raw<{ rows: unknown[] }>("select 1 from signing_key where kid = ?", [expiredKid])).rows.length,
    }));
    assert.deepEqual(platform, { throttles: [blockedAddress], keys: 0 });
    assert.ok(result.sessions >= 3 + 1 && result.invitations >= 1 && result.retrySecrets >= 1 && result.throttles >= 1 && result.signingKeys >= 1);
    assert.equal(RETENTION_MS, 30 * DAY_MS);
  });

  test("rotates the signing key once it has signed for SIGNING_KEY_ROTATION_DAYS, and not before (0 = never)", async () => {
    assert.equal((await sweep(h.db, kek, { ...SETTINGS, rotationDays: 30 }, new Date()))?.rotated, false, "a young key stays");
    // The key "has signed for 31 days": back-date it rather than sweep in the future, which would
    // prune rows other test files still use.
    const before = await withServiceRole(h.db, "identity", async (trx) =>
      (
        await trx.raw<{ rows: { kid: string }[] }>(
          `update signing_key set created_at = created_at - interval '31 days', activated_at = activated_at - interval '31 days'
           where activated_at is not null and retired_at is null returning kid`,
        )
      ).rows[0]!.kid,
    );
    assert.equal((await sweep(h.db, kek, { ...SETTINGS, rotationDays: 0 }, new Date()))?.rotated, false, "0 = never");
    assert.equal((await sweep(h.db, kek, { ...SETTINGS, rotationDays: 30 }, new Date()))?.rotated, true);
    const published = await withServiceRole(h.db, "identity", async (trx) =>
      (await trx.raw<{ rows: { kid: string; retired: boolean }[] }>("select kid, retired_at is not null as retired from signing_key where kid = ?", [before])).rows,
    );
    assert.deepEqual(published, [{ kid: before, retired: true }], "the old key verifies until its tokens expire");
    const active = await withServiceRole(h.db, "identity", async (trx) =>
      (await trx.raw<{ rows: { kid: string }[] }>("select kid from signing_key where activated_at is not null and retired_at is null")).rows,
    );
    assert.equal(active.length, 1);
    assert.notEqual(active[0]!.kid, before, "a new key signs");
  });

  test("one replica at a time: while another holds the lock, a sweep does nothing", async () => {
    const { rows } = await h.db.raw<{ rows: { version: string }[] }>("select version() as version");
    if (/wasm|emscripten|pglite/i.test(rows[0]!.version)) {
      // The embedded engine is one PostgreSQL backend serving one process: there are no replicas,
      // and it runs one transaction at a time, so two sweeps cannot overlap. They both complete.
      const both = await Promise.all([sweep(h.db, kek, SETTINGS, new Date()), sweep(h.db, kek, SETTINGS, new Date())]);
      assert.ok(both.every((r) => r !== undefined));
      return;
    }
    await h.db.transaction(async (other) => {
      await other.raw("select pg_advisory_xact_lock(?)", [HOUSEKEEPING_LOCK_KEY]);
      assert.equal(await sweep(h.db, kek, SETTINGS, new Date()), undefined);
    });
    assert.ok(await sweep(h.db, kek, SETTINGS, new Date()));
  });
});
