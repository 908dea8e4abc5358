import { createKnex, startEmbeddedPostgres, type Knex } from "@promptcraft/db";
import { existsSync } from "node:fs";
import { request } from "node:http";

/** The database a test run uses, and how to let it go. */
export interface TestDatabase {
  url: string;
  /** `external` (DATABASE_URL), `container` (testcontainers) or `embedded` (PGlite). */
  kind: "external" | "container" | "embedded";
  stop(): Promise<void>;
}

/**
 * Picks the test database (brief §7): `DATABASE_URL` if set; else a testcontainers PostgreSQL
 * with pgvector where a Docker engine answers; else the embedded engine in memory.
 * `PROMPTCRAFT_TEST_DB=embedded|container` forces one.
 */
export async function provisionTestDatabase(env: Record<string, string | undefined>, log: (line: string) => void): Promise<TestDatabase> {
  const forced = env.PROMPTCRAFT_TEST_DB;
  if (env.DATABASE_URL && !forced) return { url: env.DATABASE_URL, kind: "external", stop: async () => {} };
  if (forced === "container" || (forced === undefined && (await dockerAnswers(env)))) {
    log("test database: starting a PostgreSQL + pgvector container (testcontainers) …");
    const { PostgreSqlContainer } = await import("@testcontainers/postgresql");
    const container = await new PostgreSqlContainer("pgvector/pgvector:pg16").start();
    return { url: container.getConnectionUri(), kind: "container", stop: async () => void (await container.stop()) };
  }
  log("test database: starting the embedded engine (PGlite + pgvector, in memory) …");
  const engine = await startEmbeddedPostgres({ port: 0 });
  return { url: engine.url, kind: "embedded", stop: () => engine.stop() };
}

/** True when a Docker engine answers its ping within a second (the CLI alone is not enough). */
async function dockerAnswers(env: Record<string, string | undefined>): Promise<boolean> {
  const host = env.DOCKER_HOST;
  const socketPath = host?.startsWith("unix://") ? host.slice(7) : host ? undefined : "/var/run/docker.sock";
  if (host && !socketPath) return true; // a TCP engine: let testcontainers try it
  if (!socketPath || !existsSync(socketPath)) return false;
  return new Promise((resolve) => {
    const req = request({ socketPath, path: "/_ping", timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("error", () => resolve(false));
    req.on("timeout", () => {
      req.destroy();
      resolve(false);
    });
    req.end();
  });
}

/**
 * A knex on the already-migrated database the test runner provides (`DATABASE_URL`: PostgreSQL or
 * the embedded engine), for store and schema tests; destroy it in `after`. It connects as the
 * runner's user (the table owner, a superuser): wrap store calls in `withTenant` to act as the
 * service's role under row-level security, and call them bare to check what the SQL alone selects.
 */
export function openTestKnex(applicationName = "promptcraft-tests"): Knex {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error("DATABASE_URL must point to a migrated database (`npm test` sets it)");
  return createKnex({ url, poolMax: 4, applicationName });
}

/**
 * Runs `fn` while a transaction holding an xid (as a writer does) is open in another database of the
 * test server (`postgres`), then ends it: horizons of this database must not wait for it. External
 * PostgreSQL only (the embedded engine has one database).
 */
export async function whileOtherDatabaseWrites<T>(fn: () => Promise<T>): Promise<T> {
  const url = new URL(process.env.DATABASE_URL!);
  url.pathname = "/postgres";
  const other = createKnex({ url: url.toString(), poolMax: 1, applicationName: "promptcraft-tests-other-db" });
  try {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let started!: () => void;
    const startedP = new Promise<void>((r) => (started = r));
    const held = other.transaction(async (trx) => {
      await trx.raw("select pg_current_xact_id()");
      started();
      await released;
    });
    await startedP;
    try {
      return await fn();
    } finally {
      release();
      await held;
    }
  } finally {
    await other.destroy();
  }
}
