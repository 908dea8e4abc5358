import knexFactory, { type Knex } from "knex";
import pg from "pg";
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

/** Creates a knex instance on the `pg` driver. Every service and tool gets its database this way. */
export function createKnex(options: KnexOptions): Knex {
  return knexFactory({
    client: "pg",
    connection: {
      connectionString: options.url,
      application_name: options.applicationName ?? "promptcraft",
      types: dbTypes,
      ...(options.statementTimeoutMs ? { statement_timeout: options.statementTimeoutMs } : {}),
    },
    pool: { min: 0, max: options.poolMax ?? 10, idleTimeoutMillis: 30_000 },
    // Migrations are supplied in code (see migrate.ts), never discovered from the file system.
    migrations: {},
  });
}

/** The `pg` driver, re-exported so that callers share one copy (type parsers are per copy). */
export { pg };
export type { Knex };
