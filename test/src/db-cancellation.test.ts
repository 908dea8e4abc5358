import { afterAll, beforeAll, describe, test } from "vitest";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { closeKnex, createKnex, withTenant, type Knex } from "@promptcraft/db";
import { createTenant } from "@promptcraft/testing";

/**
 * withTenant with a signal (TenantScope.signal), and closeKnex, on the database itself (both
 * engines): whenever the signal aborts — waiting for a connection, between statements, in a statement stuck on a
 * lock — the transaction rejects with the signal's reason and nothing of it is committed.
 * The lock is a row lock on PostgreSQL and the single session (an open transaction) on the
 * embedded engine.
 */

const EMBEDDED = process.env.PROMPTCRAFT_TEST_DB_KIND === "embedded";
const url = process.env.DATABASE_URL ?? "";
/** The connections of the test itself (fixtures, lock holders, checks). */
const other = createKnex({ url, poolMax: 3, applicationName: "promptcraft-cancel-tests" });
const pools: Knex[] = [];
/** A pool under test, destroyed after the file. */
function pool(poolMax: number): Knex {
  const knex = createKnex({ url, poolMax, applicationName: "promptcraft-cancel-tests-pool" });
  pools.push(knex);
  return knex;
}
let tenantId: string;
beforeAll(async () => {
  tenantId = await createTenant(other, { name: "before" });
});
afterAll(async () => {
  await Promise.all(pools.map((knex) => closeKnex(knex)));
  await other.destroy();
});

const rename = (knex: Knex, name: string, signal?: AbortSignal) =>
  withTenant(knex, { service: "identity", tenantId, signal }, (trx) => trx.raw("update tenant set name = ? where id = ?", [name, tenantId]));

async function nameNow(): Promise<string> {
  const { rows } = await other.raw<{ rows: { name: string }[] }>("select name from tenant where id = ?", [tenantId]);
  return rows[0]!.name;
}

/** A lock the renames wait for, held on one of `other`'s connections: the tenant row on PostgreSQL, the session on the embedded engine. */
async function holdLock(): Promise<{ trx: Knex.Transaction; pid: number }> {
  const trx = await other.transaction();
  if (EMBEDDED) {
    await trx.raw("select 1");
    return { trx, pid: 0 };
  }
  await trx.raw("select 1 from tenant where id = ? for update", [tenantId]);
  const { rows } = await trx.raw<{ rows: { pid: number }[] }>("select pg_backend_pid() as pid");
  return { trx, pid: rows[0]!.pid };
}

/** How many backends wait for a lock `pid` holds (PostgreSQL only; on the embedded engine nothing is observable while the session is held). */
async function waitersOf(pid: number): Promise<number> {
  const { rows } = await other.raw<{ rows: { n: number }[] }>("select count(*)::int as n from pg_stat_activity where ? = any(pg_blocking_pids(pid))", [pid]);
  return rows[0]!.n;
}

/** Polls `predicate`; fails after a generous bound (on the test, not a timing assertion). */
async function until(what: string, predicate: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (await predicate()) return;
    await sleep(10);
  }
  assert.fail(`timed out waiting until ${what}`);
}

/** The rename is queued behind the lock (on the embedded engine: after a pause). */
async function waiting(lock: { pid: number }): Promise<void> {
  if (EMBEDDED) await sleep(300);
  else await until("the rename waits for the lock", async () => (await waitersOf(lock.pid)) > 0);
}

describe("withTenant with a signal", () => {
  for (const next of ["runs another statement", "returns"] as const) {
    test(`aborted between statements, then the work ${next}: rolled back, rejects with the reason, never committed`, async () => {
      const knex = pool(2);
      const control = new AbortController();
      let resume: (() => void) | undefined;
      let after: "ran" | "failed" | undefined;
      const work = withTenant(knex, { service: "identity", tenantId, signal: control.signal }, async (trx) => {
        await trx.raw("update tenant set name = 'between statements' where id = ?", [tenantId]);
        await new Promise<void>((resolve) => (resume = resolve));
        if (next === "runs another statement") {
          after = await trx.raw("update tenant set plan = 'pro' where id = ?", [tenantId]).then(
            () => "ran" as const,
            () => "failed" as const,
          );
        }
        return "finished";
      });
      await until("the first statement ran", () => resume !== undefined);
      const reason = new Error("stopped between statements");
      control.abort(reason);
      resume!();
      await assert.rejects(work, (err) => err === reason);
      if (next === "runs another statement") {
        await until("the work went on", () => after !== undefined);
        assert.equal(after, "failed", "a statement after the abort does not run");
      }
      assert.equal(await nameNow(), "before");
      await rename(knex, "before"); // the pool still works
    });
  }

  test("aborted while waiting for a connection: rejects at once, the pool stays usable", async () => {
    const knex = pool(1);
    const busy = await knex.transaction();
    try {
      const control = new AbortController();
      const work = rename(knex, "never", control.signal);
      const reason = new Error("stopped while waiting for a connection");
      control.abort(reason);
      await assert.rejects(work, (err) => err === reason);
    } finally {
      await busy.rollback();
    }
    await rename(knex, "before");
    assert.equal(await nameNow(), "before");
  });

  test("aborted while its statement waits on a lock: the statement is cancelled before the lock is released, nothing committed", async () => {
    const knex = pool(2);
    const lock = await holdLock();
    const control = new AbortController();
    const reason = new Error("stopped in a lock wait");
    let outcome: unknown;
    try {
      const work = rename(knex, "after the lock", control.signal).then(
        () => "committed",
        (err: unknown) => err,
      );
      await waiting(lock);
      control.abort(reason);
      outcome = await work; // while the lock is still held
      if (!EMBEDDED) assert.equal(await waitersOf(lock.pid), 0, "its statement no longer waits");
    } finally {
      await lock.trx.rollback();
    }
    assert.equal(outcome, reason);
    assert.equal(await nameNow(), "before");
    await rename(knex, "before"); // a new connection replaces the one that saw the cancel
  });
});

describe("closeKnex", () => {
  test("returns while a transaction is stuck on a lock; that transaction and later ones fail with its reason; nothing committed", async () => {
    const knex = createKnex({ url, poolMax: 2, applicationName: "promptcraft-cancel-tests-pool" });
    const lock = await holdLock();
    const reason = new Error("pool closed");
    try {
      const stuck = rename(knex, "after the lock").then(
        () => "committed",
        (err: unknown) => err,
      );
      await waiting(lock);
      await closeKnex(knex, { reason, timeoutMs: 300 }); // while the lock is still held
      assert.equal(await stuck, reason);
      await assert.rejects(rename(knex, "too late"), (err) => err === reason);
      if (!EMBEDDED) await until("no statement of the closed pool waits", async () => (await waitersOf(lock.pid)) === 0);
    } finally {
      await lock.trx.rollback();
    }
    assert.equal(await nameNow(), "before");
  });
});
