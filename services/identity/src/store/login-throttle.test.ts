import { afterAll, beforeAll, describe, test } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { withServiceRole, type Knex } from "@promptcraft/db";
import { openTestKnex } from "@promptcraft/testing";
import type { ThrottlePolicy } from "../domain/login-throttle.js";
import * as store from "./login-throttle.js";

/*
 * Store tier: the SQL of store/login-throttle.ts on the test runner's database. `login_throttle` is
 * a platform table (no tenant: an unknown tenant's logins are throttled too), so each test uses
 * keys of its own instead of a tenant of its own.
 */

let knex: Knex;
const policy: ThrottlePolicy = { accountFailures: 2, addressFailures: 5, baseDelayS: 10, maxDelayS: 60, windowS: 900 };
const account = (): store.ThrottleKey => ({ scope: "account", key: `store-test:${randomUUID()}` });

beforeAll(() => {
  knex = openTestKnex("identity-store-login-throttle");
});
afterAll(async () => {
  await knex.destroy();
});

describe("store/login-throttle", () => {
  test("failures count per key; past the allowance the key is blocked; clearing forgets it", async () => {
    const [a, b] = [account(), account()];
    for (let i = 0; i < 3; i++) await withServiceRole(knex, "identity", (trx) => store.recordFailures(trx, [a], policy));
    await withServiceRole(knex, "identity", (trx) => store.recordFailures(trx, [b], policy));
    const states = await withServiceRole(knex, "identity", (trx) => store.readThrottles(trx, [a, b]));
    const [sa, sb] = [states.get(store.throttleMapKey(a)), states.get(store.throttleMapKey(b))];
    assert.equal(sa?.failureCount, 3);
    assert.ok(sa?.blockedUntil && sa.blockedUntil.getTime() > Date.now(), "the third failure of two allowed blocks");
    assert.deepEqual([sb?.failureCount, sb?.blockedUntil], [1, null]);

    await withServiceRole(knex, "identity", (trx) => store.clearThrottles(trx, [a]));
    const cleared = await withServiceRole(knex, "identity", (trx) => store.readThrottles(trx, [a, b]));
    assert.deepEqual([...cleared.keys()], [store.throttleMapKey(b)]);
  });

  test("concurrent failures on one key all count (the row is locked)", async () => {
    const key = account();
    await Promise.all(Array.from({ length: 4 }, () => withServiceRole(knex, "identity", (trx) => store.recordFailures(trx, [key], { ...policy, accountFailures: 10 }))));
    const states = await withServiceRole(knex, "identity", (trx) => store.readThrottles(trx, [key]));
    assert.equal(states.get(store.throttleMapKey(key))?.failureCount, 4);
  });
});
