import { afterAll, beforeAll, describe, test } from "vitest";
import assert from "node:assert/strict";
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { createRequire } from "node:module";
import { setTimeout as sleep } from "node:timers/promises";
import type { Knex } from "@promptcraft/db";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { EntityType } from "@promptcraft/proto/promptcraft/content/v1/resources_pb";
import { ContentHarness, ok, PROTOCOLS, type Outcome, type Protocol } from "./content-e2e-helpers.js";
import { testServiceEnv } from "./identity-e2e-helpers.js";
import { unaryCall } from "./rpc-outcomes.js";

/**
 * Shutdown is bounded, and a call reported as failed is never committed afterwards. A content
 * service process (its built main.js, as containers run it) has writes waiting on a lock the test
 * holds from its own connection — on PostgreSQL the entity's row and the tenant's row (a create
 * checks its foreign key to the tenant with a share lock), on the embedded engine the single session
 * (an open transaction). SIGTERM with a 1.5 s grace period: the process exits while the lock is
 * still held, every client got UNAVAILABLE (SHUTTING_DOWN), and once the lock is released none of
 * the writes is there.
 */

const EMBEDDED = process.env.PROMPTCRAFT_TEST_DB_KIND === "embedded";
const h = new ContentHarness();
beforeAll(() => h.start());
afterAll(() => h.close());

const M = ContentService.method;

/** The content service in its own process; resolves once it serves, with its ports. */
async function startContentProcess(env: Record<string, string>): Promise<{ child: ChildProcessWithoutNullStreams; ports: { grpcPort: number; connectPort: number }; output: () => string }> {
  const main = createRequire(import.meta.url).resolve("@promptcraft/content").replace(/index\.js$/, "main.js");
  const child = spawn(process.execPath, [main], { env: { PATH: process.env.PATH ?? "", ...env } });
  let out = "";
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const ports = await new Promise<{ grpcPort: number; connectPort: number }>((resolve, reject) => {
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      const serving = /"grpcPort":(\d+),"connectPort":(\d+)[^\n]*"msg":"serving"/.exec(out);
      if (serving) resolve({ grpcPort: Number(serving[1]), connectPort: Number(serving[2]) });
    });
    child.once("exit", (code) => reject(new Error(`content exited early with ${code}: ${out}`)));
  });
  child.removeAllListeners("exit");
  return { child, ports, output: () => out };
}

describe("SIGTERM while writes wait on a lock", () => {
  test("the process exits within the grace period (plus a margin) with the lock still held; the failed writes are never committed", async () => {
    const t = await h.tenantWith(["editor"]);
    const editor = t.users[0]!;
    const auth = { authorization: `Bearer ${editor.token}` };
    const entities = [];
    for (let i = 0; i < 3; i++) entities.push(ok(await h.call("grpc", M.createEntity, { entity: { type: EntityType.CONTEXT, title: `v1 of ${i}` } }, editor.token)));

    const service = await startContentProcess({
      ...testServiceEnv(),
      LOG_LEVEL: "info",
      DB_POOL_MAX: "8",
      SHUTDOWN_GRACE_MS: "1500",
      IDENTITY_URL: `http://127.0.0.1:${h.identity.grpcPort}`,
    });
    let exited: Promise<number | null> | undefined;
    try {
      // Warm up: the key set and the credential status are cached, and the pool holds connections
      // (on the embedded engine a write then waits in the engine's queue, not for a new connection).
      for (const protocol of PROTOCOLS) {
        await Promise.all(entities.map((e) => unaryCall(ContentService, service.ports, protocol, M.getEntity, { entityId: e.id }, auth).then(ok)));
      }
      const update = (protocol: Protocol, id: string) =>
        unaryCall(ContentService, service.ports, protocol, M.updateEntity, { entity: { id, title: "while locked" }, updateMask: { paths: ["title"] } }, auth);
      const create = (protocol: Protocol) =>
        unaryCall(ContentService, service.ports, protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, title: "created while locked" } }, auth);

      const lock = await h.db.transaction();
      let writes: Promise<Outcome<unknown>>[] = [];
      try {
        const holder = await holdLocks(lock, t.tenantId, entities.map((e) => e.id));
        writes = [update("grpc", entities[0]!.id), update("connect", entities[1]!.id), create("grpc"), create("connect")];
        if (EMBEDDED) await sleep(500);
        else await until("all four writes wait for the test's locks", async () => (await waitersOf(holder)) >= writes.length);

        exited = new Promise((resolve) => service.child.once("exit", (code) => resolve(code)));
        const signalled = performance.now();
        service.child.kill("SIGTERM");
        // Generous: this bounds the test, it does not time the service (it has 1.5 s + its margin).
        const code = await Promise.race([exited, sleep(20_000, "still running" as const, { ref: false })]);
        assert.notEqual(code, "still running", `the service did not exit while the lock was held:\n${service.output()}`);
        console.log(`exited ${Math.round(performance.now() - signalled)} ms after SIGTERM (grace 1500 ms), code ${String(code)}`);
        const outcomes = await Promise.all(writes);
        // Stopped at the end of the grace period, each write answers UNAVAILABLE (SHUTTING_DOWN), which
        // clients retry, instead of being cut off by the transport (CANCELLED, a broken stream).
        assert.deepEqual(
          outcomes.map((o) => (o.ok ? "OK" : `${o.code} ${o.reason}`)),
          writes.map(() => "UNAVAILABLE SHUTTING_DOWN"),
        );
        if (!EMBEDDED) await until("no statement of the stopped service waits for the lock any more", async () => (await waitersOf(holder)) === 0);
      } finally {
        await lock.rollback();
      }
      await Promise.all(writes);

      // Nothing of the four writes: no new version, no new entity, no event beyond the creations.
      const { rows: versions } = await h.db.raw<{ rows: { n: number }[] }>("select count(*)::int as n from entity_version where tenant_id = ?", [t.tenantId]);
      assert.equal(versions[0]!.n, 3);
      const { rows: created } = await h.db.raw<{ rows: { n: number }[] }>("select count(*)::int as n from entity where tenant_id = ?", [t.tenantId]);
      assert.equal(created[0]!.n, 3);
      assert.deepEqual((await h.events(t.tenantId)).map((e) => e.event_type), ["content.entity.created", "content.entity.created", "content.entity.created"]);
      // And the writes still work, through the in-process service: a later update of a locked entity is its version 2.
      assert.equal(ok(await h.call("grpc", M.updateEntity, { entity: { id: entities[0]!.id, title: "after" }, updateMask: { paths: ["title"] } }, editor.token)).version, 2);
      assert.match(service.output(), /"msg":"stopped"/);
    } finally {
      if (!exited) service.child.kill("SIGKILL");
    }
  });
});

/**
 * Takes the locks the writes will wait for, on `lock`'s connection: on PostgreSQL the entities' rows
 * (updates lock them) and the tenant's row (an insert's foreign-key check takes a share lock on it);
 * on the embedded engine the open transaction holds the whole session. Returns the holder's pid.
 */
async function holdLocks(lock: Knex.Transaction, tenantId: string, entityIds: string[]): Promise<number> {
  if (EMBEDDED) {
    await lock.raw("select 1");
    return 0;
  }
  await lock.raw("select 1 from entity where id = any(?::uuid[]) for update", [entityIds]);
  await lock.raw("select 1 from tenant where id = ? for update", [tenantId]);
  const { rows } = await lock.raw<{ rows: { pid: number }[] }>("select pg_backend_pid() as pid");
  return rows[0]!.pid;
}

/** How many backends wait for a lock `holderPid` holds, directly or behind another waiter (creations of one tenant queue on an advisory lock) (PostgreSQL). */
async function waitersOf(holderPid: number): Promise<number> {
  const { rows } = await h.db.raw<{ rows: { n: number }[] }>(
    `with recursive blocked (pid) as (
       select pid from pg_stat_activity where ? = any(pg_blocking_pids(pid))
       union
       select a.pid from pg_stat_activity a join blocked b on b.pid = any(pg_blocking_pids(a.pid))
     ) select count(*)::int as n from blocked`,
    [holderPid],
  );
  return rows[0]!.n;
}

/** Polls until `predicate` holds; fails after a generous bound (a bound on the test, not a timing assertion). */
async function until(what: string, predicate: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (await predicate()) return;
    await sleep(10);
  }
  assert.fail(`timed out waiting until ${what}`);
}
