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
  /**
   * Longest wait, in milliseconds, for a pooled connection — and for opening a new one (TCP connect
   * plus startup). Default: knex's 60 s. While the server is unreachable every query waits this
   * long before it fails, so services bound it (`DB_ACQUIRE_TIMEOUT_MS`).
   */
  acquireTimeoutMs?: number;
  /**
   * Where knex's own messages go (pool acquire errors, lost connections, deprecations). Default:
   * knex prints them with `console.log`, stack traces included — services route them to their
   * JSON logger instead.
   */
  log?: KnexLog;
}

/** Receivers of knex's log messages (each gets one preformatted string). */
export interface KnexLog {
  warn(message: string): void;
  error(message: string): void;
  deprecate(message: string): void;
  debug(message: string): void;
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
      // A server that vanished without closing the socket (a partition, a killed VM) is noticed by
      // TCP keepalive instead of never; a connect that hangs gives up with the pool's wait.
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      ...(options.acquireTimeoutMs ? { connectionTimeoutMillis: options.acquireTimeoutMs } : {}),
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
      ...(options.acquireTimeoutMs ? { createTimeoutMillis: options.acquireTimeoutMs } : {}),
      // A connection that was sent a CancelRequest is not handed out again: a cancel arriving late
      // would hit the next caller's statement.
      validate: (connection: object) => !control.discarded.has(connection),
    },
    ...(options.acquireTimeoutMs ? { acquireConnectionTimeout: options.acquireTimeoutMs } : {}),
    ...(options.log ? { log: knexLogger(options.log) } : {}),
    // A failed statement's text is prefixed to the driver's error message, which gets logged: the
    // text with its $n placeholders, not with the values bound to them (secrets, personal data).
    compileSqlOnError: false,
    // Migrations are supplied in code (see migrate.ts), never discovered from the file system.
    migrations: {},
  });
  attachPoolControl(knex, control);
  return knex;
}

// knex's typings declare `deprecate(method, alternative)`, but it calls the function with one
// preformatted message, like the others.
function knexLogger(log: KnexLog): Knex.Config["log"] {
  return {
    warn: (message: unknown) => log.warn(String(message)),
    error: (message: unknown) => log.error(String(message)),
    debug: (message: unknown) => log.debug(String(message)),
    deprecate: ((message: unknown) => log.deprecate(String(message))) as unknown as (method: string, alternative: string) => void,
  };
}

/** The `pg` driver, re-exported so that callers share one copy (type parsers are per copy). */
export { pg };
export type { Knex };
