import { afterAll, beforeAll, describe, test } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { closeKnex } from "./cancel.js";
import { isConnectionError } from "./connection-errors.js";
import { createKnex, type Knex } from "./knex.js";
import { readAsService, readAsTenant, selectRows, tenantReads } from "./read.js";
import { tenantIsolationSql } from "./rls.js";
import { withTenant } from "./tenant.js";
import { DbTime } from "./time.js";

// readAsTenant on the migrated test database (the runner's DATABASE_URL, either engine): one
// pipelined round trip must give what withTenant gives a read — RLS, the role, nothing leaking —
// plus read-only, and stop like it.

const EMBEDDED = process.env.PROMPTCRAFT_TEST_DB_KIND === "embedded";
const url = process.env.DATABASE_URL ?? "";
if (!url) throw new Error("DATABASE_URL must point to a migrated database (the test runner sets it)");
const table = `read_probe_${randomUUID().replace(/-/g, "").slice(0, 12)}`;
const [tenantA, tenantB] = [randomUUID(), randomUUID()];
const userA = randomUUID();
/** Set-up and checks, as the superuser. */
let admin: Knex;
const pools: Knex[] = [];
/** A pool under test, closed after the file. */
function pool(poolMax: number): Knex {
  const knex = createKnex({ url, poolMax, applicationName: "promptcraft-read-test" });
  pools.push(knex);
  return knex;
}
const scopeA = { service: "content" as const, tenantId: tenantA, userId: userA };

beforeAll(async () => {
  admin = createKnex({ url, poolMax: 2, applicationName: "promptcraft-read-test-admin" });
  await admin.raw(`
    create table ${table} (tenant_id uuid not null, body text not null);
    ${tenantIsolationSql(table)}
    grant select, insert on ${table} to promptcraft_content;`);
  await admin.raw(`insert into ${table} values (?, 'a1'), (?, 'a2'), (?, 'b1')`, [tenantA, tenantA, tenantB]);
});
afterAll(async () => {
  await Promise.all(pools.map((knex) => closeKnex(knex)));
  await admin.raw(`drop table if exists ${table}`);
  await admin.destroy();
});

describe("readAsTenant", () => {
  test("sees the scope's tenant only (RLS), as the service's role, with the user and read-only set", async () => {
    const knex = pool(2);
    const rows = await readAsTenant<{ body: string }>(knex, scopeA, `select body from ${table} order by body`);
    assert.deepEqual(rows, [{ body: "a1" }, { body: "a2" }]);
    const [settings] = await readAsTenant<Record<string, string>>(
      knex,
      scopeA,
      "select current_user as role, current_setting('app.tenant_id') as tenant, current_setting('app.user_id') as user_id, current_setting('transaction_read_only') as read_only",
    );
    assert.deepEqual(settings, { role: "promptcraft_content", tenant: tenantA, user_id: userA, read_only: "on" });
    const noUser = await readAsTenant<{ u: string }>(knex, { service: "identity", tenantId: tenantB }, "select current_setting('app.user_id') as u, current_user as r");
    assert.deepEqual(noUser, [{ u: "", r: "promptcraft_identity" }]);
  });

  test("a write fails (read-only transaction), and writes nothing", async () => {
    const knex = pool(1);
    for (const sql of [`insert into ${table} values (?, 'w')`, `with w as (insert into ${table} values (?, 'w') returning 1) select * from w`]) {
      await assert.rejects(readAsTenant(knex, scopeA, sql, [tenantA]), (err: { code?: string }) => err.code === "25006");
    }
    const { rows } = await admin.raw<{ rows: unknown[] }>(`select 1 from ${table} where body = 'w'`);
    assert.equal(rows.length, 0);
  });

  test("leaves no setting on the connection for its next user", async () => {
    const knex = pool(1);
    await readAsTenant(knex, scopeA, "select 1");
    const { rows } = await knex.raw<{ rows: Record<string, string>[] }>(
      "select current_user as role, coalesce(current_setting('app.tenant_id', true), '') as tenant, current_setting('transaction_read_only') as read_only",
    );
    assert.notEqual(rows[0]!.role, "promptcraft_content");
    assert.equal(rows[0]!.tenant, "");
    assert.equal(rows[0]!.read_only, "off");
    // And the next read in another scope gets its own.
    assert.deepEqual(await readAsTenant(knex, { service: "content", tenantId: tenantB }, `select body from ${table}`), [{ body: "b1" }]);
  });

  test("applies the scope's further settings to its read only, as withTenant does", async () => {
    const knex = pool(1);
    const settings = { plan_cache_mode: "force_custom_plan", work_mem: "7MB" };
    const sql = "select current_setting('plan_cache_mode') as plans, current_setting('work_mem') as mem, current_setting('app.tenant_id') as tenant";
    assert.deepEqual(await readAsTenant(knex, { ...scopeA, settings }, sql), [{ plans: "force_custom_plan", mem: "7MB", tenant: tenantA }]);
    const { rows } = await withTenant(knex, { ...scopeA, settings }, (trx) => trx.raw<{ rows: unknown[] }>(sql));
    assert.deepEqual(rows, [{ plans: "force_custom_plan", mem: "7MB", tenant: tenantA }]);
    const [after] = await readAsTenant<{ plans: string; mem: string }>(knex, scopeA, sql);
    assert.notEqual(after!.plans, "force_custom_plan");
    assert.notEqual(after!.mem, "7MB");
  });

  test("parses values as knex does (timestamptz as DbTime, int8 as text, json, arrays, nulls)", async () => {
    const knex = pool(1);
    const sql = `select now() as t, 9007199254740993::int8 as big, 3::int as small, '{"a":[1,"x"]}'::jsonb as doc, array['x','y']::text[] as tags,
                        ?::uuid as id, null::text as nothing, true as yes, 1.5::numeric as num, ?::timestamptz as given`;
    const bindings = [tenantA, "2026-01-02T03:04:05.123456Z"];
    const [ours] = await readAsTenant<Record<string, unknown>>(knex, scopeA, sql, bindings);
    const { rows } = await withTenant(knex, scopeA, (trx) => trx.raw<{ rows: Record<string, unknown>[] }>(sql, bindings));
    const theirs = rows[0]!;
    assert.ok(ours!.t instanceof DbTime && ours!.given instanceof DbTime);
    assert.equal((ours!.given as Date).toISOString(), "2026-01-02T03:04:05.123456Z");
    assert.deepEqual({ ...ours, t: null }, { ...theirs, t: null });
    assert.deepEqual([typeof ours!.big, typeof ours!.small, typeof ours!.num], ["string", "number", "string"]);
  });

  test("takes knex bindings: fragments, arrays, dates", async () => {
    const knex = pool(1);
    const rows = await readAsTenant<{ body: string }>(knex, scopeA, `select body from ${table} where ? and body = any(?::text[]) and ?::timestamptz < now()`, [
      knex.raw("tenant_id = ?::uuid", [tenantA]),
      ["a2", "b1"],
      new Date(0),
    ]);
    assert.deepEqual(rows, [{ body: "a2" }]);
  });

  test("an error anywhere in the pipeline fails the call and leaves the connection usable", async () => {
    const knex = pool(1);
    const failing: [string, string][] = [
      ["select 1/0", "22012"],
      ["select frobnicate(", "42601"], // the Parse fails
      [`select body from ${table} where tenant_id = 'not a uuid'`, "22P02"],
      ["select 1/0", "22012"], // the same text again: no stale prepared statement in the way
    ];
    for (const [sql, code] of failing) {
      await assert.rejects(readAsTenant(knex, scopeA, sql), (err: { code?: string }) => err.code === code, sql);
      assert.deepEqual(await readAsTenant(knex, scopeA, `select count(*)::int as n from ${table}`), [{ n: 2 }]);
    }
    const bad = { service: "content" as const, tenantId: "not a uuid" };
    await assert.rejects(readAsTenant(knex, bad, `select body from ${table}`), (err: { code?: string }) => err.code === "22P02");
    assert.deepEqual(await readAsTenant(knex, scopeA, `select count(*)::int as n from ${table}`), [{ n: 2 }]);
  });

  test("keeps a bounded number of prepared statements per connection", async () => {
    const knex = pool(1);
    for (let i = 0; i < 130; i++) assert.deepEqual(await readAsTenant(knex, scopeA, `select ${i} as i`), [{ i }]);
    // Evicted statements are closed with the next exchange; the engine's session may hold other
    // connections' statements too (embedded), so count this process's.
    const [{ n }] = (await readAsTenant<{ n: number }>(knex, scopeA, "select count(*)::int as n from pg_prepared_statements where statement like 'select % as i'")) as [{ n: number }];
    assert.ok(n <= 100, `${n} statements prepared`);
    assert.deepEqual(await readAsTenant(knex, scopeA, "select 5 as i"), [{ i: 5 }]);
  });

  test("stopped by the signal while waiting for a connection: withdrawn from the queue", async () => {
    const knex = pool(1);
    let release!: () => void;
    const held = withTenant(knex, scopeA, () => new Promise<void>((resolve) => (release = resolve)));
    await sleep(50);
    const control = new AbortController();
    const read = readAsTenant(knex, { ...scopeA, signal: control.signal }, "select 1");
    await sleep(50);
    const reason = new Error("the caller went away");
    control.abort(reason);
    await assert.rejects(read, (err) => err === reason);
    release();
    await held;
    assert.deepEqual(await readAsTenant(knex, scopeA, "select 1 as x"), [{ x: 1 }]);
    await assert.rejects(readAsTenant(knex, { ...scopeA, signal: control.signal }, "select 1"), (err) => err === reason, "an aborted signal stops it at once");
  });

  test("stopped by the signal while running: cancelled on the server, rejects with the reason", async () => {
    const knex = pool(1);
    const control = new AbortController();
    const reason = new Error("deadline");
    let blocker: Knex.Transaction | undefined;
    if (EMBEDDED) {
      // The embedded form of a long statement: the read waits for the session another connection holds.
      blocker = await admin.transaction();
      await blocker.raw("select 1");
    }
    const read = readAsTenant(knex, { ...scopeA, signal: control.signal }, EMBEDDED ? "select 1" : "select pg_sleep(30)");
    await sleep(EMBEDDED ? 300 : 200);
    control.abort(reason);
    await assert.rejects(read, (err) => err === reason);
    await blocker?.rollback();
    // The cancelled connection is discarded; the pool opens another.
    assert.deepEqual(await readAsTenant(knex, scopeA, "select 2 as x"), [{ x: 2 }]);
  });

  test("closeKnex stops a running read and refuses new ones", async () => {
    const knex = createKnex({ url, poolMax: 1, applicationName: "promptcraft-read-test-close" });
    let blocker: Knex.Transaction | undefined;
    if (EMBEDDED) {
      blocker = await admin.transaction();
      await blocker.raw("select 1");
    }
    const read = readAsTenant(knex, scopeA, EMBEDDED ? "select 1" : "select pg_sleep(30)").then(
      () => assert.fail("the read completed"),
      (err: unknown) => err,
    );
    await sleep(EMBEDDED ? 300 : 200);
    const reason = new Error("shutting down");
    await closeKnex(knex, { reason });
    assert.equal(await read, reason);
    await blocker?.rollback();
    await assert.rejects(readAsTenant(knex, scopeA, "select 1"), (err) => err === reason);
  });

  test("an unreachable server is a connection error (UNAVAILABLE upstream), within the acquire timeout", async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const knex = createKnex({ url: `postgres://postgres@127.0.0.1:${port}/x`, poolMax: 1, acquireTimeoutMs: 500 });
    pools.push(knex);
    await assert.rejects(readAsTenant(knex, scopeA, "select 1"), (err) => isConnectionError(err));
  });

  test("selectRows runs the same read alone (tenantReads) or inside a transaction", async () => {
    const knex = pool(2);
    const sql = `select body from ${table} where ? order by body`;
    const alone = await selectRows<{ body: string }>(tenantReads(knex, scopeA), sql, [tenantReads(knex, scopeA).raw("body like ?", ["a%"])]);
    const inside = await withTenant(knex, scopeA, (trx) => selectRows<{ body: string }>(trx, sql, [trx.raw("body like ?", ["a%"])]));
    assert.deepEqual(alone, [{ body: "a1" }, { body: "a2" }]);
    assert.deepEqual(inside, alone);
    // On a transaction, readAsTenant runs inside it (a savepoint with the scope's settings).
    const nested = await withTenant(knex, { service: "content", tenantId: tenantB }, (trx) => readAsTenant(trx, scopeA, `select body from ${table} order by body`));
    assert.deepEqual(nested, alone);
  });

  test("readAsService: the service's role with no tenant (RLS hides every tenant row), read-only", async () => {
    const knex = pool(1);
    assert.deepEqual(await readAsService(knex, "content", `select body from ${table}`), []);
    assert.deepEqual(await readAsService(knex, "content", "select current_user as role, current_setting('app.tenant_id') as tenant"), [
      { role: "promptcraft_content", tenant: "" },
    ]);
    await assert.rejects(readAsService(knex, "content", `insert into ${table} values (?, 'w')`, [tenantA]), (err: { code?: string }) => err.code === "25006");
  });
});
