import knexFactory, { type Knex } from "knex";
import net from "node:net";
import pg from "pg";
import { attachPoolControl, newPoolControl } from "./cancel.js";
import { dbTypes } from "./time.js";

// int8 (counts, sums, bigserial ids) arrives as a string by default so that no precision is lost
// silently; numeric likewise. We keep that default and convert explicitly where a value is known small.
// timestamptz is read as a DbTime: a Date that keeps PostgreSQL's microseconds (see time.ts).

/** Options for {@link createKnex}. */
export interface KnexOptions {
  /** PostgreSQL connection URL, e.g. `postgres://user@127.0.0.1:5432/db`. */
  url: string;
  /** Largest number of pooled connections (default 10). The embedded engine wants few. */
  poolMax?: number;
  /** Shown in `pg_stat_activity.application_name`, so operators can tell services apart. */
  applicationName?: string;
  /** Milliseconds a statement may run before the server cancels it (default: no limit). */
  statementTimeoutMs?: number;
}

/**
 * Creates a knex instance on the `pg` driver. Every service and tool gets its database this way.
 * Its transactions (withTenant, withServiceRole) are cancellable, and {@link closeKnex} closes it
 * without waiting for statements stuck on locks.
 */
export function createKnex(options: KnexOptions): Knex {
  const control = newPoolControl();
  const knex = knexFactory({
    client: "pg",
    connection: {
      connectionString: options.url,
      application_name: options.applicationName ?? "promptcraft",
      types: dbTypes,
      ...(options.statementTimeoutMs ? { statement_timeout: options.statementTimeoutMs } : {}),
      // pg opens each connection on the socket this returns: closeKnex can then destroy every one,
      // including connections still being opened (which knex.destroy() would wait for).
      stream: () => {
        const socket = new net.Socket();
        control.sockets.add(socket);
        socket.once("close", () => control.sockets.delete(socket));
        return socket;
      },
    },
    pool: {
      min: 0,
      max: options.poolMax ?? 10,
      idleTimeoutMillis: 30_000,
      // A connection that was sent a CancelRequest is not handed out again: a cancel arriving late
      // would hit the next caller's statement.
      validate: (connection: object) => !control.discarded.has(connection),
    },
    // Migrations are supplied in code (see migrate.ts), never discovered from the file system.
    migrations: {},
  });
  attachPoolControl(knex, control);
  return knex;
}

/** The `pg` driver, re-exported so that callers share one copy (type parsers are per copy). */
export { pg };
export type { Knex };
