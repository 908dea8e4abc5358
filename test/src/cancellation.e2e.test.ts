import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, createServiceClient } from "@promptcraft/client";
import type { Knex } from "@promptcraft/db";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { EntityType } from "@promptcraft/proto/promptcraft/content/v1/resources_pb";
import { ContentHarness, ok, PROTOCOLS, type TestUser } from "./content-e2e-helpers.js";

/**
 * A call whose deadline passes, or whose client cancels it, while its write waits on a lock stops
 * its database work: on PostgreSQL the waiting statement is cancelled on the server (it no longer
 * waits, although the lock is still held), and nothing of it is ever committed — not when the lock
 * is released either. On the embedded engine the "lock" is the single session, held by an open
 * transaction on another connection, and the statement waits in the engine's queue.
 */

const EMBEDDED = process.env.PROMPTCRAFT_TEST_DB_KIND === "embedded";
const h = new ContentHarness();
beforeAll(() => h.start());
afterAll(() => h.close());

/** A lock the test holds from its own connection: the entity's row on PostgreSQL, the whole session on the embedded engine. */
async function holdLock(entityId: string): Promise<{ trx: Knex.Transaction; pid: number }> {
  const trx = await h.db.transaction();
  if (EMBEDDED) {
    await trx.raw("select 1");
    return { trx, pid: 0 };
  }
  await trx.raw("select 1 from entity where id = ? for update", [entityId]);
  const { rows } = await trx.raw<{ rows: { pid: number }[] }>("select pg_backend_pid() as pid");
  return { trx, pid: rows[0]!.pid };
}

/** How many backends wait for a lock `holderPid` holds (PostgreSQL). */
async function waitersOf(holderPid: number): Promise<number> {
  const { rows } = await h.db.raw<{ rows: { n: number }[] }>("select count(*)::int as n from pg_stat_activity where ? = any(pg_blocking_pids(pid))", [holderPid]);
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

/** The call is queued behind the lock: seen in pg_stat_activity on PostgreSQL; on the embedded engine (nothing to observe while the session is held) after a pause. */
async function waitingOnLock(holderPid: number): Promise<void> {
  if (EMBEDDED) await sleep(300);
  else await until("the update waits for the entity lock", async () => (await waitersOf(holderPid)) > 0);
}

function codeOf(err: unknown): Code {
  return ConnectError.from(err).code;
}

for (const protocol of PROTOCOLS) {
  describe(`a write waiting on a lock, over ${protocol}`, () => {
    const client = () =>
      createServiceClient(ContentService, `http://127.0.0.1:${protocol === "grpc" ? h.content.grpcPort : h.content.connectPort}`, {
        protocol,
      });

    async function entityOf(editor: TestUser): Promise<{ id: string; etag: string }> {
      return ok(await h.call(protocol, ContentService.method.createEntity, { entity: { type: EntityType.CONTEXT, title: "v1" } }, editor.token));
    }

    /** After the lock is gone: nothing of the stopped call was committed. A further update queues behind anything still pending on the same lock, so it proves that nothing was pending. */
    async function assertNothingCommitted(tenantId: string, editor: TestUser, entityId: string): Promise<void> {
      const next = ok(await h.call(protocol, ContentService.method.updateEntity, { entity: { id: entityId, title: "after the lock" }, updateMask: { paths: ["title"] } }, editor.token));
      assert.equal(next.version, 2, "the stopped update wrote no version");
      const events = (await h.events(tenantId, entityId)).map((e) => e.event_type);
      assert.deepEqual(events, ["content.entity.created", "content.entity.updated"]);
    }

    for (const how of ["deadline", "client cancel"] as const) {
      test(`${how}: the statement is cancelled while the lock is still held, and nothing is committed`, async () => {
        const t = await h.tenantWith(["editor"]);
        const editor = t.users[0]!;
        const e = await entityOf(editor);
        const lock = await holdLock(e.id);
        try {
          const abort = new AbortController();
          const update = client()
            .updateEntity(
              { entity: { id: e.id, title: "written while locked" }, updateMask: { paths: ["title"] } },
              { headers: { authorization: `Bearer ${editor.token}` }, ...(how === "deadline" ? { timeoutMs: 500 } : { signal: abort.signal }) },
            )
            .then(
              () => "OK",
              (err: unknown) => Code[codeOf(err)],
            );
          if (how === "client cancel") {
            await waitingOnLock(lock.pid);
            abort.abort();
          }
          assert.equal(await update, how === "deadline" ? "DeadlineExceeded" : "Canceled");
          if (!EMBEDDED) await until("no statement of the call waits for the lock any more", async () => (await waitersOf(lock.pid)) === 0);
        } finally {
          await lock.trx.rollback();
        }
        await assertNothingCommitted(t.tenantId, editor, e.id);
      });
    }
  });
}
