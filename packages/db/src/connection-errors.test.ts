import { test, describe } from "vitest";
import assert from "node:assert/strict";
import net from "node:net";
import pg from "pg";
import { isConnectionError } from "./connection-errors.js";
import { createKnex } from "./knex.js";

/** A port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A server that accepts connections and closes them at once (a database that dies mid-handshake). */
async function slammingServer(): Promise<{ port: number; close(): Promise<void> }> {
  const server = net.createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const errorWithCode = (code: string, message = "x") => Object.assign(new Error(message), { code });

describe("isConnectionError", () => {
  test("SQLSTATEs of a server going away, starting up or full; class 08", () => {
    for (const code of ["57P01", "57P02", "57P03", "53300", "08000", "08003", "08006", "08001", "08P01"]) {
      assert.equal(isConnectionError(errorWithCode(code)), true, code);
    }
  });

  test("not the statement's own errors: constraint, syntax, serialization, permission, cancel", () => {
    for (const code of ["23505", "42601", "40001", "40P01", "42501", "57014", "25P03"]) {
      assert.equal(isConnectionError(errorWithCode(code)), false, code);
    }
    assert.equal(isConnectionError(new Error("Connection terminated unexpectedly, or so a user wrote")), false);
    assert.equal(isConnectionError(new TypeError("Connection terminated unexpectedly")), false);
    assert.equal(isConnectionError(undefined), false);
    assert.equal(isConnectionError("ECONNREFUSED"), false);
  });

  test("found through knex's statement prefix, `cause` chains and AggregateErrors", () => {
    assert.equal(isConnectionError(new Error("ROLLBACK - Client has encountered a connection error and is not queryable")), true);
    assert.equal(isConnectionError(new Error("wrapped", { cause: errorWithCode("57P01") })), true);
    assert.equal(isConnectionError(new AggregateError([errorWithCode("ECONNREFUSED")], "all failed")), true);
  });

  test("real driver: a refused connection (ECONNREFUSED)", async () => {
    const client = new pg.Client({ host: "127.0.0.1", port: await closedPort(), user: "x", database: "x" });
    const err = await client.connect().then(() => undefined, (e: unknown) => e);
    assert.equal(isConnectionError(err), true, String(err));
  });

  test("real driver: a connection closed by the server during the handshake", async () => {
    const server = await slammingServer();
    try {
      const client = new pg.Client({ host: "127.0.0.1", port: server.port, user: "x", database: "x" });
      const err = await client.connect().then(() => undefined, (e: unknown) => e);
      assert.equal(isConnectionError(err), true, String(err));
    } finally {
      await server.close();
    }
  });

  test("real pool: knex's acquire timeout while no connection can be made (KnexTimeoutError), and the first waiter's connect error", async () => {
    const db = createKnex({ url: `postgres://x@127.0.0.1:${await closedPort()}/x`, poolMax: 1, acquireTimeoutMs: 300, log: { warn() {}, error() {}, deprecate() {}, debug() {} } });
    try {
      const errors = await Promise.all([1, 2, 3].map(() => db.raw("select 1").then(() => undefined, (e: unknown) => e)));
      for (const err of errors) assert.equal(isConnectionError(err), true, String(err));
      assert.ok(errors.some((err) => (err as Error).name === "KnexTimeoutError"), "some waiters time out");
    } finally {
      await db.destroy();
    }
  });
});
