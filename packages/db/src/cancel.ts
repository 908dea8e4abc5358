import net from "node:net";
import knexFactory, { type Knex } from "knex";
import { serialize } from "pg-protocol";

// Cancellation of database work. Every transaction made by withTenant / withServiceRole, and every
// read of readAsTenant (read.ts), runs on a connection this module acquired itself, so that it can
// stop the work it owns:
// - while waiting for a pooled connection: withdraw the request from the pool's queue;
// - while a statement runs (a lock wait, a slow query): send the server a CancelRequest with the
//   connection's backend key, so the statement fails with 57014 and the transaction rolls back — a
//   statement blocked on a lock never notices that its client went away, a cancel it does;
// - between statements: roll back at once;
// - after the work returned: never COMMIT (checked right before it). Once COMMIT is on the wire it
//   is not interrupted: that outcome is the database's, whatever the caller was told meanwhile.
// What stops it: the transaction's AbortSignal (TenantScope.signal: an RPC call's, a background
// job's), or closeKnex at shutdown.

/** The parts of a `pg` Client this module uses (public fields of pg 8 that @types/pg leaves out). @internal */
export interface PgConnection {
  readonly processID: number | null;
  readonly secretKey: number | null;
  /** False while a statement is on its way or running. */
  readonly readyForQuery: boolean;
  readonly host: string;
  readonly port: number;
}

/** The pool side of knex's client (`knex.client`, typed `any` by knex); `pool` is a tarn Pool. */
interface KnexClient {
  pool: { acquire(): { promise: Promise<PgConnection>; abort(): void } };
  releaseConnection(connection: PgConnection): void;
}

/** Per pool: what closeKnex must stop, and connections that must not be handed out again. @internal */
export interface PoolControl {
  /** Set by closeKnex: every new transaction fails with it. */
  closed: Error | undefined;
  readonly open: Set<PooledWork<unknown>>;
  /** Every socket of the pool, including connections still being opened (see createKnex). */
  readonly sockets: Set<net.Socket>;
  /** Connections that saw a CancelRequest: a late one could hit their next statement. */
  readonly discarded: WeakSet<object>;
}

const controls = new WeakMap<object, PoolControl>();

/** A new control block; createKnex makes it before the pool (its hooks use it) and attaches it. @internal */
export function newPoolControl(): PoolControl {
  return { closed: undefined, open: new Set(), sockets: new Set(), discarded: new WeakSet() };
}

/** Attaches `control` to `knex`'s pool. @internal */
export function attachPoolControl(knex: Knex, control: PoolControl): void {
  controls.set(knex.client as object, control);
}

/** The control block of `knex`'s pool (any knex not made by createKnex gets a fresh one). */
function poolControl(knex: Knex): PoolControl {
  let control = controls.get(knex.client as object);
  if (!control) attachPoolControl(knex, (control = newPoolControl()));
  return control;
}

/**
 * Runs `begin` then `work` in one transaction on a connection of `knex`'s pool, stopped by
 * `signal` or closeKnex as described at the top of this file. `begin` sets the transaction's
 * context (role, tenant).
 * @internal withTenant and withServiceRole are the entry points.
 */
export async function cancellableTransaction<T>(
  knex: Knex,
  signal: AbortSignal | undefined,
  begin: (trx: Knex.Transaction) => Promise<unknown>,
  work: (trx: Knex.Transaction) => Promise<T>,
  config?: Knex.TransactionConfig,
): Promise<T> {
  if (signal?.aborted) throw abortReason(signal);
  if ((knex as { isTransaction?: boolean }).isTransaction) {
    // A savepoint in a transaction (identity's key rotation inside a sweep): the outer
    // transaction owns the connection, and its stop and commit rules cover this work.
    return knex.transaction(async (trx) => {
      await begin(trx);
      return work(trx);
    }, config);
  }
  return runStoppable(knex, signal, (control) => new CancellableTransaction<T>(control, knex, begin, work, config));
}

/**
 * Runs `use` on a connection of `knex`'s pool (a `pg` Client), stopped by `signal` or closeKnex
 * like a transaction: withdrawn from the pool's queue, or its running statement cancelled on the
 * server (the connection is then discarded). `use` must leave the connection idle (no open
 * transaction) when it settles.
 * @internal readAsTenant is the entry point.
 */
export async function cancellableUse<T>(knex: Knex, signal: AbortSignal | undefined, use: (conn: PgConnection) => Promise<T>): Promise<T> {
  if (signal?.aborted) throw abortReason(signal);
  return runStoppable(knex, signal, (control) => new CancellableUse<T>(control, knex, use));
}

/** Registers `work` with the pool's control block and the signal for as long as it runs. */
async function runStoppable<T>(knex: Knex, signal: AbortSignal | undefined, make: (control: PoolControl) => PooledWork<T>): Promise<T> {
  const control = poolControl(knex);
  if (control.closed) throw control.closed;
  const work = make(control);
  control.open.add(work);
  signal?.addEventListener("abort", work);
  try {
    return await work.run();
  } finally {
    signal?.removeEventListener("abort", work);
    control.open.delete(work);
  }
}

/** How often stopped work's running statement is cancelled again (see keepCancelling). */
const RECANCEL_INTERVAL_MS = 100;

/** Work that holds one pooled connection: acquiring it, using it, stopping it, handing it back. */
abstract class PooledWork<T> {
  /** Why it was stopped; set once. */
  protected reason: Error | undefined;
  protected conn: PgConnection | undefined;
  private cancelSent = false;
  private abandon: ((reason: Error) => void) | undefined;
  /** Resolves when run() has handed its connection back. */
  readonly done: Promise<void>;
  private settle!: () => void;

  constructor(
    private readonly control: PoolControl,
    protected readonly knex: Knex,
  ) {
    this.done = new Promise<void>((resolve) => (this.settle = resolve));
  }

  /** The signal's "abort" listener (an object listener: no closure per call). */
  handleEvent(event: Event): void {
    this.stop(abortReason(event.target as AbortSignal));
  }

  /** Stops the work: see the top of the file. */
  abstract stop(reason: Error): void;

  /** The work on the acquired connection. */
  protected abstract use(conn: PgConnection): Promise<T>;

  async run(): Promise<T> {
    const client = this.knex.client as KnexClient;
    try {
      const conn = await this.acquire(client);
      this.conn = conn;
      try {
        return await this.use(conn);
      } catch (err) {
        // The statement's own error (57014 after a cancel, "already complete" after a rollback) is a
        // consequence: the reason is what the caller must see.
        if (this.reason) throw this.reason;
        throw err;
      } finally {
        if (this.cancelSent) this.control.discarded.add(conn);
        client.releaseConnection(conn);
      }
    } finally {
      this.settle();
    }
  }

  /** Withdraws from the pool's queue; true when it was still waiting there. */
  protected withdraw(reason: Error): boolean {
    if (this.conn) return false;
    this.abandon?.(reason);
    return true;
  }

  /** Sends a CancelRequest when a statement is on its way or running; true when it did. */
  protected cancelRunning(): boolean {
    if (!this.conn || this.conn.readyForQuery) return false;
    this.cancelSent = true;
    sendCancelRequest(this.conn);
    return true;
  }

  /**
   * A cancel that reaches the server just after its statement ended is ignored, and the work goes
   * on with its next statement, which may then wait on a lock for good (seen: a create's cancel
   * arrived as its advisory-lock wait ended; its insert then waited on a row lock). So once
   * stopped, until the work has handed its connection back, whatever statement is running is
   * cancelled again every RECANCEL_INTERVAL_MS.
   */
  protected keepCancelling(): void {
    if (!this.conn) return;
    const timer = setInterval(() => this.cancelRunning(), RECANCEL_INTERVAL_MS);
    timer.unref();
    void this.done.then(() => clearInterval(timer));
  }

  protected throwIfStopped(): void {
    if (this.reason) throw this.reason;
  }

  /**
   * A pooled connection, or the stop reason if stopped first. Straight from tarn (knex's
   * acquireConnection hides the pending request): a stop withdraws the request from the queue.
   */
  private acquire(client: KnexClient): Promise<PgConnection> {
    const pending = client.pool.acquire();
    return new Promise<PgConnection>((resolve, reject) => {
      this.abandon = (reason) => {
        pending.abort();
        reject(reason);
      };
      pending.promise.then(
        (conn) => {
          this.abandon = undefined;
          if (this.reason) client.releaseConnection(conn);
          else resolve(conn);
        },
        (err: Error) => {
          this.abandon = undefined;
          // What knex's acquireConnection makes of tarn's timeout.
          reject(err.constructor.name === "TimeoutError" ? new knexFactory.KnexTimeoutError("Knex: Timeout acquiring a connection. The pool is probably full.") : err);
        },
      );
    });
  }
}

class CancellableTransaction<T> extends PooledWork<T> {
  private committing = false;
  private trx: Knex.Transaction | undefined;

  constructor(
    control: PoolControl,
    knex: Knex,
    private readonly begin: (trx: Knex.Transaction) => Promise<unknown>,
    private readonly work: (trx: Knex.Transaction) => Promise<T>,
    private readonly config: Knex.TransactionConfig | undefined,
  ) {
    super(control, knex);
  }

  /** Does nothing once COMMIT was sent. */
  stop(reason: Error): void {
    if (this.reason || this.committing) return;
    this.reason = reason;
    if (this.withdraw(reason)) return;
    if (!this.cancelRunning() && this.trx && !this.trx.isCompleted()) {
      // Between statements: the work's next statement fails ("transaction query already complete").
      this.trx.rollback(reason).catch(() => {});
    }
    // Else BEGIN is about to be sent: the check at the start of the work rolls back.
    this.keepCancelling();
  }

  protected use(conn: PgConnection): Promise<T> {
    return this.knex.transaction(
      async (trx) => {
        this.trx = trx;
        this.throwIfStopped();
        await this.begin(trx);
        const result = await this.work(trx);
        this.throwIfStopped(); // never COMMIT once stopped
        this.committing = true;
        return result;
      },
      { ...this.config, connection: conn },
    );
  }
}

class CancellableUse<T> extends PooledWork<T> {
  constructor(
    control: PoolControl,
    knex: Knex,
    private readonly work: (conn: PgConnection) => Promise<T>,
  ) {
    super(control, knex);
  }

  stop(reason: Error): void {
    if (this.reason) return;
    this.reason = reason;
    if (!this.withdraw(reason)) this.cancelRunning();
    // Else between acquiring and sending, or after the answer: the check below, or nothing to stop.
    this.keepCancelling();
  }

  protected use(conn: PgConnection): Promise<T> {
    this.throwIfStopped();
    return this.work(conn);
  }
}

/** The signal's reason as an Error (a signal aborted without one has a DOMException AbortError). */
function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new Error("the database work was cancelled", { cause: reason });
}

/**
 * Asks the server to cancel the statement running on `conn` (PostgreSQL's CancelRequest, sent on a
 * new connection with the backend's key; no authentication, so it needs no pool slot). Best
 * effort: a cancel that arrives when nothing runs is ignored by the server.
 */
function sendCancelRequest(conn: PgConnection): void {
  if (conn.processID === null || conn.secretKey === null) return;
  const packet = serialize.cancel(conn.processID, conn.secretKey);
  const socket = conn.host.startsWith("/") ? net.connect(`${conn.host}/.s.PGSQL.${conn.port}`) : net.connect(conn.port, conn.host);
  socket.setTimeout(2000, () => socket.destroy());
  socket.once("connect", () => socket.end(packet));
  socket.on("error", () => socket.destroy());
}

/** Options for {@link closeKnex}. */
export interface CloseKnexOptions {
  /** What new and open transactions fail with (the platform passes an UNAVAILABLE error). */
  reason?: Error;
  /** How long open transactions get to roll back after their cancel before every socket is destroyed (default 500 ms). */
  timeoutMs?: number;
}

/**
 * Closes `knex`'s pool without waiting for its users: new transactions fail with `reason`, open
 * ones are stopped (running statements cancelled on the server, then rolled back; never
 * committed), and whatever is still connected after `timeoutMs` — a statement the cancel did not
 * reach, a connection still being opened — is destroyed. Resolves within about three times `timeoutMs`.
 * (`knex.destroy()` alone waits for every connection in use to come back, which a statement waiting
 * on a lock never does.)
 */
export async function closeKnex(knex: Knex, options: CloseKnexOptions = {}): Promise<void> {
  const control = poolControl(knex);
  const reason = options.reason ?? new Error("the database pool is closed");
  const timeoutMs = options.timeoutMs ?? 500;
  control.closed ??= reason;
  const open = [...control.open];
  for (const tx of open) tx.stop(reason);
  await within(Promise.all(open.map((tx) => tx.done)), timeoutMs);
  const destroyed = knex.destroy();
  if (!(await within(destroyed, timeoutMs))) {
    for (const socket of control.sockets) socket.destroy();
    await within(destroyed, timeoutMs);
  }
}

/** Whether `promise` settled within `ms`. */
async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const settled = await Promise.race([
    promise.then(
      () => true,
      () => true,
    ),
    new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms))),
  ]);
  clearTimeout(timer);
  return settled;
}
