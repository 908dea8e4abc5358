import { randomBytes } from "node:crypto";
import type { EventEmitter } from "node:events";
import { createRequire } from "node:module";
import type { Knex } from "knex";
import { cancellableUse, type PgConnection } from "./cancel.js";
import { SERVICE_ROLES, settingsSql, withServiceRole, withTenant, type ServiceName, type TenantScope } from "./tenant.js";

// Read-only calls in one round trip. withTenant costs four (BEGIN, the settings, the statement,
// COMMIT) and knex's transaction machinery on top. A read needs neither: readAsTenant writes, at
// once, the extended-protocol messages of two statements and a single Sync —
//
//   Parse/Bind/Execute  select set_config('role', $1, true), set_config('app.tenant_id', $2, true),
//                              set_config('app.user_id', $3, true), set_config('transaction_read_only', 'on', true)
//                              [, set_config($4, $5, true) … for the scope's further settings]
//   Parse/Bind/Describe/Execute  the read
//   Sync
//
// Until Sync the messages form one implicit transaction: the settings are transaction-local
// (`SET LOCAL`), hold for the read — row-level security sees the tenant, the role is the service's,
// a write fails (25006) — and end with it, so nothing leaks to the next user of the connection. An
// error skips the rest until Sync, which ends the transaction: the connection stays usable.
//
// Both statements are named prepared statements of the connection (parsed once per connection,
// planned as PostgreSQL decides), which saves the parse and most of the planning of hot reads. The
// names carry a per-process prefix: on the embedded engine every connection shares one session, so
// names must not collide between connections or processes. Each connection keeps at most
// MAX_STATEMENTS of them (least recently used are closed).
//
// The connection is acquired and stopped through cancel.ts like withTenant's: the call's signal
// withdraws it from the pool's queue or cancels the running read (the connection is then discarded);
// closeKnex stops it; the pool's acquire timeout applies; errors are the driver's own, so
// isConnectionError recognises an outage as before.

const CONTEXT_SQL =
  "select set_config('role', $1, true), set_config('app.tenant_id', $2, true), set_config('app.user_id', $3, true), set_config('transaction_read_only', 'on', true)";

/** Named statements kept per connection; the least recently used beyond this are closed (0: unnamed, parsed every time). */
const MAX_STATEMENTS: number = 100;

/** Prefix of this process's statement names (see the top of the file). */
const NAME_PREFIX = `pc_${randomBytes(4).toString("hex")}_`;
let nextName = 0;

/** What a store needs to build SQL: knex's `raw`, here only to compose fragments, never to run them. */
export interface SqlBuilder {
  raw(sql: string, bindings?: readonly Knex.RawBinding[]): Knex.Raw;
}

/**
 * A tenant scope for reads that run alone, each as one read-only round trip ({@link readAsTenant}).
 * Stores take it where they also take a transaction (see {@link Reader}). Its `raw` only composes
 * fragments: a fragment awaited on its own would run outside the tenant scope.
 */
export class TenantReads implements SqlBuilder {
  constructor(
    readonly knex: Knex,
    readonly scope: TenantScope,
  ) {}

  raw(sql: string, bindings: readonly Knex.RawBinding[] = []): Knex.Raw {
    return this.knex.raw(sql, bindings);
  }
}

/** Where a store's read runs: inside a transaction (withTenant's `trx`), or alone as one round trip. */
export type Reader = Knex.Transaction | TenantReads;

/** Reads for `scope` on `knex`, each as one read-only round trip. */
export function tenantReads(knex: Knex, scope: TenantScope): TenantReads {
  return new TenantReads(knex, scope);
}

/** The rows of `sql` (knex bindings: `?` placeholders, fragments allowed) run on `reader`. */
export async function selectRows<R>(reader: Reader, sql: string, bindings: readonly Knex.RawBinding[] = []): Promise<R[]> {
  if (reader instanceof TenantReads) return readAsTenant<R>(reader.knex, reader.scope, sql, bindings);
  return (await reader.raw<{ rows: R[] }>(sql, bindings)).rows;
}

/**
 * Runs one read-only statement as `scope.service`'s role for `scope.tenantId` (row-level security
 * applies) in one round trip, and returns its rows, parsed as knex's `raw` parses them. `sql` takes
 * knex bindings (`?`, `knex.raw` fragments). A write in it fails (read-only transaction); nothing of
 * the scope outlives it. Stopped by `scope.signal` and closeKnex like withTenant. On a transaction
 * (`knex.isTransaction`) it runs inside it, in a savepoint with the scope's settings.
 */
export async function readAsTenant<R>(knex: Knex, scope: TenantScope, sql: string, bindings: readonly Knex.RawBinding[] = []): Promise<R[]> {
  if ((knex as { isTransaction?: boolean }).isTransaction) {
    return withTenant(knex, scope, async (trx) => (await trx.raw<{ rows: R[] }>(sql, bindings)).rows);
  }
  const extra = settingsSql(scope.settings, (n) => `$${4 + n}`);
  return pipelined<R>(knex, CONTEXT_SQL + extra.sql, [SERVICE_ROLES[scope.service], scope.tenantId, scope.userId ?? "", ...extra.values], scope.signal, sql, bindings);
}

/**
 * Runs one read-only statement as `service`'s role with no tenant set (row-level security hides
 * every tenant row), in one round trip: the read-only counterpart of withServiceRole, for lookups
 * across tenants through functions that allow them (an API key by its secret's hash).
 */
export async function readAsService<R>(
  knex: Knex,
  service: ServiceName,
  sql: string,
  bindings: readonly Knex.RawBinding[] = [],
  options: { signal?: AbortSignal } = {},
): Promise<R[]> {
  if ((knex as { isTransaction?: boolean }).isTransaction) {
    return withServiceRole(knex, service, async (trx) => (await trx.raw<{ rows: R[] }>(sql, bindings)).rows, options);
  }
  // An empty tenant is no tenant: the policies read it with nullif(…, '').
  return pipelined<R>(knex, CONTEXT_SQL, [SERVICE_ROLES[service], "", ""], options.signal, sql, bindings);
}

function pipelined<R>(knex: Knex, contextSql: string, context: string[], signal: AbortSignal | undefined, sql: string, bindings: readonly Knex.RawBinding[]): Promise<R[]> {
  const native = knex.raw(sql, bindings).toSQL().toNative();
  // knex's "query" event, as its own runner emits it (debug logging, the content benchmark's capture).
  if (knex.listenerCount("query") > 0) (knex.client as EventEmitter).emit("query", { method: "raw", sql: native.sql, bindings: native.bindings, options: {} });
  return cancellableUse(knex, signal, (conn) => pipelinedRead<R>(conn as PgClient, contextSql, context, native.sql, native.bindings));
}

/** The parts of a pooled `pg` Client used here (pg 8; `connection` is not in @types/pg). */
interface PgClient extends PgConnection {
  readonly connection: PgWire;
  query(submittable: { submit(connection: PgWire): null }): unknown;
  getTypeParser(oid: number, format: string): (value: string) => unknown;
}

/** pg's Connection: writes protocol messages. */
interface PgWire {
  readonly stream: { cork?(): void; uncork?(): void };
  parse(query: { text: string; name: string; types: number[] }): void;
  bind(config: { statement: string; values: unknown[]; valueMapper?: (value: unknown) => unknown }): void;
  describe(msg: { type: "P"; name: string }): void;
  execute(config: object): void;
  close(msg: { type: "S"; name: string }): void;
  sendCopyFail(message: string): void;
  sync(): void;
}

interface FieldDescription {
  name: string;
  dataTypeID: number;
  format: string;
}

/** The named statements a connection has (statement text → name, least recently used first). */
interface PreparedStatements {
  names: Map<string, string>;
  /** Names to close before the next statements (evicted, or of unknown state after an error). */
  toClose: string[];
}

// pg's own conversion of parameter values (utils.prepareValue: Dates, arrays, JSON, Buffers), done
// before anything is written so that a value that cannot be sent fails the call, not the connection.
const prepareValue = (createRequire(import.meta.url)("pg/lib/utils.js") as { prepareValue: (value: unknown) => unknown }).prepareValue;

const prepared = new WeakMap<object, PreparedStatements>();

function pipelinedRead<R>(client: PgClient, contextSql: string, context: unknown[], sql: string, values: readonly unknown[]): Promise<R[]> {
  let statements = prepared.get(client);
  if (!statements) prepared.set(client, (statements = { names: new Map(), toClose: [] }));
  return new Promise<R[]>((resolve, reject) => {
    client.query(new TenantRead<R>(client, statements, contextSql, context, sql, values.map(prepareValue), (err, rows) => (err ? reject(err) : resolve(rows!))));
  });
}

/**
 * The pipeline as a pg "Submittable": pg's Client calls `submit` when the connection is free and
 * then hands it every backend message of the exchange (pg/lib/client.js) until ReadyForQuery, or
 * until an error (it then forgets it: ReadyForQuery follows without it).
 */
class TenantRead<R> {
  private completed = 0;
  private parsers: ((value: string) => unknown)[] = [];
  private fields: FieldDescription[] = [];
  private readonly rows: R[] = [];
  private failure: Error | undefined;
  private settled = false;
  /** Names parsed or closed by this exchange: unknown state if it fails. */
  private touched: string[] = [];

  constructor(
    private readonly client: PgClient,
    private readonly statements: PreparedStatements,
    private readonly contextSql: string,
    private readonly context: unknown[],
    private readonly sql: string,
    private readonly values: unknown[],
    private readonly done: (err: Error | null, rows?: R[]) => void,
  ) {}

  submit(connection: PgWire): null {
    connection.stream.cork?.();
    try {
      for (const name of this.statements.toClose) connection.close({ type: "S", name });
      this.touched = this.statements.toClose;
      this.statements.toClose = [];
      connection.bind({ statement: this.statement(connection, this.contextSql), values: this.context });
      connection.execute({});
      connection.bind({ statement: this.statement(connection, this.sql), values: this.values });
      connection.describe({ type: "P", name: "" });
      connection.execute({});
      connection.sync();
    } finally {
      connection.stream.uncork?.();
    }
    return null;
  }

  /** The statement's name on this connection, parsing it first when new. */
  private statement(connection: PgWire, text: string): string {
    if (MAX_STATEMENTS === 0) {
      connection.parse({ text, name: "", types: [] });
      return "";
    }
    const { names, toClose } = this.statements;
    const known = names.get(text);
    if (known !== undefined) {
      names.delete(text); // most recently used last
      names.set(text, known);
      return known;
    }
    const name = `${NAME_PREFIX}${nextName++}`;
    connection.parse({ text, name, types: [] });
    names.set(text, name);
    this.touched.push(name);
    if (names.size > MAX_STATEMENTS) {
      const [oldestText, oldest] = names.entries().next().value!;
      names.delete(oldestText);
      toClose.push(oldest);
    }
    return name;
  }

  handleRowDescription(msg: { fields: FieldDescription[] }): void {
    this.fields = msg.fields;
    this.parsers = msg.fields.map((f) => this.client.getTypeParser(f.dataTypeID, f.format || "text"));
  }

  handleDataRow(msg: { fields: (string | null)[] }): void {
    // The context statement's row (no description was asked for it) is not the caller's.
    if (this.completed === 0 || this.failure) return;
    const row: Record<string, unknown> = {};
    try {
      for (let i = 0; i < msg.fields.length; i++) {
        const raw = msg.fields[i]!;
        row[this.fields[i]!.name] = raw === null ? null : this.parsers[i]!(raw);
      }
    } catch (err) {
      // As pg does: the exchange runs to its end, then fails with the parser's error.
      this.failure = err as Error;
      return;
    }
    this.rows.push(row as R);
  }

  handleCommandComplete(): void {
    this.completed++;
  }

  handleEmptyQuery(): void {}

  handlePortalSuspended(): void {}

  handleCopyInResponse(connection: PgWire): void {
    connection.sendCopyFail("COPY FROM STDIN is not a read");
  }

  handleCopyData(): void {}

  /** A statement failed (the rest was skipped until Sync), or the connection broke. */
  handleError(err: Error): void {
    // What this exchange parsed may or may not exist now; what it closed may still: close them
    // all before they are used again (closing a statement that does not exist is no error).
    const { names, toClose } = this.statements;
    for (const name of this.touched) {
      toClose.push(name);
      for (const [text, n] of names) if (n === name) names.delete(text);
    }
    this.finish(this.failure ?? err);
  }

  handleReadyForQuery(): void {
    if (this.failure) this.finish(this.failure);
    else this.finish(null, this.rows);
  }

  private finish(err: Error | null, rows?: R[]): void {
    if (this.settled) return;
    this.settled = true;
    this.done(err, rows);
  }
}
