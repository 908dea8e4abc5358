// The embedded engine: PGlite (PostgreSQL compiled to WebAssembly) with pgvector and the contrib
// extensions the schema needs, served over the PostgreSQL wire protocol on a TCP port so that `psql`
// and the ordinary `pg` driver (every service's knex pool) connect to it exactly as to a real server.
//
// Why not `PGLiteSocketServer` from @electric-sql/pglite-socket as it stands: its queue hands the
// single PGlite session to connections one *protocol message* at a time and keeps it for one
// connection only while `BEGIN … COMMIT` is open. pg's extended protocol (Parse, Bind, Execute, Sync —
// every parameterised query) runs as several messages, so two connections' messages interleave:
// we reproduced connection A receiving the row of connection B's statement (both used the unnamed
// statement), and B's query being swallowed without a result when A's Execute failed (the backend
// discards messages until A's Sync). Its connection limit also answers with plain text that clients
// report as "connection terminated unexpectedly". The server below is modelled on it (same framing,
// SSL refusal, PGlite's raw protocol API) but arbitrates per conversation: a connection owns the
// session from its first message until the backend says ReadyForQuery *idle* — i.e. through the
// whole extended-protocol sequence and through any open transaction. That is the isolation a real
// server gives, provided by serialising. (Re-checked with pglite-socket 0.2.18: unchanged; see
// docs/decisions.md.)

import { randomInt } from "node:crypto";
import fs, { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { NodeFS } from "@electric-sql/pglite/nodefs";
import { btree_gist } from "@electric-sql/pglite/contrib/btree_gist";
import { pg_trgm } from "@electric-sql/pglite/contrib/pg_trgm";
import { pgcrypto } from "@electric-sql/pglite/contrib/pgcrypto";
import { uuid_ossp } from "@electric-sql/pglite/contrib/uuid_ossp";
import { vector } from "@electric-sql/pglite-pgvector";

/** Options for {@link startEmbeddedPostgres}. */
export interface EmbeddedPostgresOptions {
  /**
   * Directory holding the database files. `undefined` keeps everything in memory (tests). The CLI
   * uses `<repo>/.promptcraft/pgdata`. A directory left by a crashed run opens: PostgreSQL replays
   * its WAL at start (takes a second or two longer).
   */
  dataDir?: string;
  /** Interface to listen on (default `127.0.0.1`; the engine has no authentication at all). */
  host?: string;
  /** TCP port (default 54329). `0` picks a free port; read it back from {@link EmbeddedPostgres.port}. */
  port?: number;
  /**
   * Most client connections at once (default 100, like PostgreSQL's `max_connections`). Each costs
   * only a socket: the engine itself is one session that connections take turns on.
   */
  maxConnections?: number;
  /**
   * A connection that holds the session (open transaction, or an unfinished extended-protocol
   * sequence) and sends nothing for this many milliseconds *while other connections wait* is
   * terminated (SQLSTATE 25P03) and its transaction rolled back — the embedded counterpart of
   * `idle_in_transaction_session_timeout`. It turns the classic single-session deadlock (code that
   * holds a transaction on one pooled connection and awaits a query on another) into an error
   * instead of a hang. Default 30000; `0` disables.
   */
  idleInTransactionTimeoutMs?: number;
  /**
   * Milliseconds between background `CHECKPOINT`s (default 60000; `0` disables). PGlite runs
   * PostgreSQL in single-user mode, which has no checkpointer: without them the WAL grows without
   * bound (we measured 79 GB after 16 minutes of inserts) and a restart must replay all of it.
   */
  checkpointIntervalMs?: number;
  /**
   * With a {@link dataDir}: make every acknowledged commit survive a power cut (default `true`; no
   * effect in memory). PGlite ships with `fsync=off`, and its Node filesystem (Emscripten's NODEFS)
   * turns `fsync()` into a no-op even when it is on, so a commit reaches only the OS page cache: a
   * process crash loses nothing, a power cut can lose recent commits or corrupt the directory. `true`
   * starts PostgreSQL with `fsync=on` and `wal_sync_method=fsync` and gives NODEFS a real `fsync`
   * (see {@link SyncingNodeFS}). It costs roughly 2–5× on small committed writes (docs/decisions.md).
   */
  durable?: boolean;
  /** Receives one line per notable event (start, recovery, terminated connections, errors). */
  log?: (line: string) => void;
}

/** A running embedded engine, from {@link startEmbeddedPostgres}. */
export interface EmbeddedPostgres {
  /** Connection URL, `postgres://postgres@127.0.0.1:<port>/postgres`. User and database name are ignored by PGlite. */
  url: string;
  /** The TCP port actually bound (useful with `port: 0`). */
  port: number;
  /**
   * The PGlite instance itself. Prefer connecting to {@link url}: a query issued here runs on the
   * shared session between two wire-protocol messages, i.e. possibly *inside* a client's
   * transaction. It is safe only while no client is connected.
   */
  pglite: PGlite;
  /** Closes the socket server (clients are disconnected, open transactions rolled back), then the database, so its files are flushed. Idempotent. */
  stop(): Promise<void>;
}

/** Default port of the embedded engine (brief §5): PostgreSQL's 5432 moved out of its way. */
export const DEFAULT_EMBEDDED_PORT = 54329;

/**
 * Starts PGlite with pgvector (`vector`), `btree_gist`, `pg_trgm`, `pgcrypto` and `uuid-ossp`
 * available to `CREATE EXTENSION`, and serves it on `host:port` over the PostgreSQL wire protocol.
 *
 * Semantics a client sees (they differ from a real server; see docs in this file's header):
 * - Connections take turns on one session. A transaction on one connection blocks the others until
 *   it ends, so isolation is serialisable in effect; keep transactions short.
 * - Every connection is the same superuser session: session state (`SET` without `LOCAL`, session
 *   advisory locks, `LISTEN`, prepared statement names, temp tables) is shared. Use `SET LOCAL` /
 *   `set_config(…, true)` and transaction-level advisory locks. State is discarded when the last
 *   client disconnects; a client's named prepared statements are deallocated when it disconnects.
 * - A client that disconnects mid-transaction has its transaction rolled back.
 * - `COPY … FROM STDIN` is refused with SQLSTATE 0A000 (in PGlite it kills the engine).
 *   `COPY … TO STDOUT` works. `statement_timeout` has no effect.
 * - Each connection gets its own backend key. A cancel request for a connection whose statement
 *   still waits for the session (the embedded form of a lock wait) fails that statement with
 *   57014, as PostgreSQL fails a statement cancelled in a lock wait; a statement already running
 *   finishes (PGlite cannot be interrupted), and a cancel for an idle connection is ignored.
 * - With a `dataDir`, every commit is fsynced (see {@link EmbeddedPostgresOptions.durable}).
 *
 * The port doubles as a lock: it is bound before the data directory is touched, so a second
 * `npm start` fails fast with a clear message. A `<dataDir>.lock` file guards the data directory
 * against a second process using another port.
 *
 * @throws Error when the port is in use, the data directory is in use by another live process, or
 *   PGlite cannot start.
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions = {}): Promise<EmbeddedPostgres> {
  const host = options.host ?? "127.0.0.1";
  const requestedPort = options.port ?? DEFAULT_EMBEDDED_PORT;
  const log = options.log ?? (() => {});
  const dataDir = options.dataDir === undefined ? undefined : path.resolve(options.dataDir);

  const server = new WireServer({
    host,
    maxConnections: options.maxConnections ?? 100,
    idleInTransactionTimeoutMs: options.idleInTransactionTimeoutMs ?? 30_000,
    checkpointIntervalMs: options.checkpointIntervalMs ?? 60_000,
    log,
  });
  // The port first: for the usual mistake (a second `npm start`) it gives the clearest message.
  const port = await server.listen(requestedPort);
  let lock: DataDirLock | undefined;
  try {
    lock = dataDir === undefined ? undefined : await acquireDataDirLock(dataDir, host, port, log);
  } catch (error) {
    await server.abort();
    throw error;
  }

  const started = Date.now();
  const durable = dataDir !== undefined && (options.durable ?? true);
  let db: PGlite;
  try {
    if (dataDir !== undefined) mkdirSync(path.dirname(dataDir), { recursive: true });
    const fresh = dataDir !== undefined && !existsSync(path.join(dataDir, "PG_VERSION"));
    db = await PGlite.create({
      ...(dataDir === undefined ? {} : durable ? { fs: new SyncingNodeFS(dataDir), startParams: DURABLE_START_PARAMS } : { dataDir }),
      extensions: { vector, btree_gist, pg_trgm, pgcrypto, uuid_ossp },
    });
    // PGlite runs initdb in memory and unpacks the result with plain writes; PostgreSQL's own initdb
    // would fsync the new directory before use, so do that once here.
    if (durable && fresh) fsyncTree(dataDir);
  } catch (error) {
    await server.abort();
    lock?.release();
    throw new Error(
      `embedded PostgreSQL: PGlite failed to start${dataDir === undefined ? "" : ` on ${dataDir}`}: ${errorMessage(error)}`,
      { cause: error },
    );
  }
  server.attach(db);
  const where =
    dataDir === undefined
      ? "in memory"
      : durable
        ? `${dataDir} (fsync on: commits survive a power cut)`
        : `${dataDir} (fsync off: commits survive a process crash, not a power cut)`;
  log(`embedded PostgreSQL (PGlite) ready on ${host}:${port}, ${where}, in ${Date.now() - started} ms`);

  let stopping: Promise<void> | undefined;
  return {
    url: `postgres://postgres@${host.includes(":") ? `[${host}]` : host}:${port}/postgres`,
    port,
    pglite: db,
    stop: () => {
      stopping ??= (async () => {
        try {
          await server.close();
          if (!server.crashed) await db.close();
        } finally {
          lock?.release();
        }
        log("embedded PostgreSQL stopped");
      })();
      return stopping;
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// Durability

/** PGlite's defaults minus `-F` (fsync off), with the WAL synced by `fsync()`, the call we make real. */
const DURABLE_START_PARAMS = [...PGlite.defaultStartParams.filter((p) => p !== "-F"), "-c", "wal_sync_method=fsync"];

/** The parts of Emscripten's NODEFS (inside PGlite's module) that {@link SyncingNodeFS} relies on. */
interface EmscriptenNodeFs {
  stream_ops?: { fsync?: (stream: { nfd?: number; node: unknown }) => number };
  realPath?: (node: unknown) => string;
  tryFSOperation?: <T>(operation: () => T) => T;
}

/**
 * PGlite's {@link NodeFS} with a working `fsync()`. Emscripten's NODEFS defines no `fsync` stream
 * operation, and Emscripten's `fsync()` succeeds without doing anything when there is none (its
 * `fdatasync()` is a no-op outright, hence `wal_sync_method=fsync`). We add the operation, calling
 * the host's fsync on the file's real descriptor, so that PostgreSQL's own sync points — the WAL at
 * each commit, data files and `pg_control` at checkpoints, directories after renames — reach the
 * disk. A failure is reported to PostgreSQL as an errno, which it answers with a PANIC, as it would
 * on a real server.
 */
class SyncingNodeFS extends NodeFS {
  override async init(pg: PGlite, opts: Parameters<NodeFS["init"]>[1]): ReturnType<NodeFS["init"]> {
    const result = await super.init(pg, opts);
    const install = (mod: { FS: { filesystems: { NODEFS: unknown } } }): void =>
      installFsync(mod.FS.filesystems.NODEFS as EmscriptenNodeFs);
    result.emscriptenOpts.preRun = [...(result.emscriptenOpts.preRun ?? []), install];
    return result;
  }
}

function installFsync(nodefs: EmscriptenNodeFs): void {
  const ops = nodefs.stream_ops;
  // Fail the start rather than claim durability we do not have (a PGlite upgrade changed Emscripten).
  if (ops === undefined || nodefs.realPath === undefined) throw new Error("PGlite's NODEFS has no stream_ops/realPath: cannot enable fsync");
  if (ops.fsync !== undefined) return; // Emscripten implements it by now
  const realPath = (node: unknown): string => nodefs.realPath!(node);
  const attempt = <T>(operation: () => T): T => (nodefs.tryFSOperation ? nodefs.tryFSOperation(operation) : operation());
  ops.fsync = (stream) =>
    attempt(() => {
      if (typeof stream.nfd === "number") {
        fs.fsyncSync(stream.nfd);
      } else {
        const fd = openSync(realPath(stream.node), "r"); // a stream without a host descriptor (a directory)
        try {
          fs.fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
      }
      return 0;
    });
}

/** fsyncs every file and directory under `dir`, and `dir`'s entry in its parent. */
function fsyncTree(dir: string): void {
  const syncPath = (p: string): void => {
    const fd = openSync(p, "r");
    try {
      fs.fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  };
  const walk = (d: string): void => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (entry.isFile()) syncPath(p);
    }
    syncPath(d);
  };
  walk(dir);
  syncPath(path.dirname(dir));
}

// ---------------------------------------------------------------------------------------------------
// Data directory lock

interface DataDirLock {
  release(): void;
}

/**
 * PGlite itself does not refuse a data directory that another process has open (it overwrites
 * `postmaster.pid`), and two writers corrupt it. A lock file beside the directory names the owner's
 * pid and port; a lock whose process is gone, or whose port no longer answers (the pid was reused,
 * e.g. after a container restart), is stale — a crashed run — and is taken over.
 */
async function acquireDataDirLock(dataDir: string, host: string, port: number, log: (line: string) => void): Promise<DataDirLock> {
  const file = `${dataDir}.lock`;
  mkdirSync(path.dirname(file), { recursive: true });
  const content = JSON.stringify({ pid: process.pid, host, port, startedAt: new Date().toISOString() }) + "\n";
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(file, "wx"); // atomic: exactly one process creates it
      try {
        writeSync(fd, content);
      } finally {
        closeSync(fd);
      }
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST" || attempt > 0) throw error;
      const holder = readLock(file);
      if (holder === undefined) {
        // Just created by a process that has not written it yet, or garbage: look again shortly.
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      const again = readLock(file) ?? {};
      if (again.pid !== undefined && (await holderAlive(again))) {
        throw new Error(
          `embedded PostgreSQL: data directory ${dataDir} is in use by process ${again.pid}` +
            `${again.port ? ` (serving port ${again.port})` : ""} — is another \`npm start\` running? Stop it first.`,
        );
      }
      log(
        `embedded PostgreSQL: the previous run${again.pid ? ` (pid ${again.pid})` : ""} did not shut down cleanly; ` +
          "PostgreSQL will recover the data directory from its WAL",
      );
      rmSync(file, { force: true });
    }
  }
  let released = false;
  return {
    release: () => {
      if (released) return;
      released = true;
      rmSync(file, { force: true });
    },
  };
}

interface LockHolder {
  pid?: number;
  host?: string;
  port?: number;
}

function readLock(file: string): LockHolder | undefined {
  try {
    const parsed = JSON.parse(readFileSync(file, "utf8")) as { pid?: unknown; host?: unknown; port?: unknown };
    return {
      ...(typeof parsed.pid === "number" ? { pid: parsed.pid } : {}),
      ...(typeof parsed.host === "string" ? { host: parsed.host } : {}),
      ...(typeof parsed.port === "number" ? { port: parsed.port } : {}),
    };
  } catch {
    return undefined;
  }
}

/** The holder listens on its port before it takes the lock, so a live holder's port answers. */
async function holderAlive(holder: LockHolder): Promise<boolean> {
  if (holder.pid === undefined || !processAlive(holder.pid)) return false;
  if (holder.pid === process.pid || holder.port === undefined) return true;
  const { host = "127.0.0.1", port } = holder;
  return new Promise((resolve) => {
    const probe = net.connect({ host, port, timeout: 1000 });
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("timeout", () => {
      probe.destroy();
      resolve(true); // something is there but slow: do not risk two writers
    });
    probe.once("error", () => resolve(false));
  });
}

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true; // started twice in one process: that is "in use" too
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

// ---------------------------------------------------------------------------------------------------
// Wire protocol server

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;
const MSG_QUERY = 0x51; // 'Q'
const MSG_PARSE = 0x50; // 'P'
const MSG_CLOSE = 0x43; // 'C'
const MSG_SYNC = 0x53; // 'S'
const MSG_TERMINATE = 0x58; // 'X'
const MSG_COPY_FAIL = 0x66; // 'f'
const MSG_FUNCTION_CALL = 0x46; // 'F'
const MSG_BACKEND_KEY = 0x4b; // 'K' (backend)
const MSG_READY = 0x5a; // 'Z' (backend)
const STATUS_IDLE = 0x49; // 'I'
/** Refuse absurd frames rather than buffer them: the largest message a sane client sends is a big Bind. */
const MAX_MESSAGE_BYTES = 1 << 30;

/** `COPY … FROM STDIN` aborts PGlite's WebAssembly process (exit(1)); after that every query hangs. */
const COPY_FROM_STDIN = /\bcopy\b[^;]*?\bfrom\s+stdin\b/i;
/** What such a statement is replaced with: an error raised by the backend itself, so transaction state and skip-until-Sync behave as for any error. */
const COPY_FROM_STDIN_REFUSAL =
  "DO $promptcraft$BEGIN RAISE EXCEPTION USING ERRCODE = 'feature_not_supported', " +
  "MESSAGE = 'COPY ... FROM STDIN is not supported by the embedded PostgreSQL (PGlite)', " +
  "HINT = 'Use INSERT, or run against a real PostgreSQL with DATABASE_URL.'; END$promptcraft$";

interface WireServerOptions {
  host: string;
  maxConnections: number;
  idleInTransactionTimeoutMs: number;
  checkpointIntervalMs: number;
  log: (line: string) => void;
}

/** One client connection: its socket, the complete messages it sent that wait for the session, and what it left in the session. */
class Connection {
  /** Bytes received that do not yet form a complete message. */
  buffer: Buffer = Buffer.alloc(0);
  /** Complete messages waiting for their turn on the session. */
  readonly queue: Buffer[] = [];
  /** False until the StartupMessage arrived (before it, frames have no type byte). */
  started = false;
  /** Over the connection limit: answer the startup with an error and close. */
  rejected = false;
  closed = false;
  /** Its backend key, sent in place of PGlite's (shared by all) so that a CancelRequest names this connection. */
  readonly secretKey = randomInt(-0x80000000, 0x7fffffff);
  /** False until its startup answer (with the key) was sent. */
  keyed = false;
  /** A cancelled extended-protocol sequence had not reached its Sync yet: drop what follows until the Sync. */
  discardUntilSync = false;
  /** When it last finished a message while owning the session (for the idle-in-transaction timeout). */
  idleSince = Date.now();
  /** Named prepared statements it created; deallocated when it goes, as its own backend would. */
  readonly statements = new Set<string>();
  readonly frames = new FrameTracker();

  constructor(
    readonly id: number,
    readonly socket: net.Socket,
  ) {}

  send(data: Uint8Array): void {
    if (!this.closed && this.socket.writable) this.socket.write(data);
  }
}

/** Follows backend message boundaries across output chunks to know whether the last message was ReadyForQuery, and with which status. */
class FrameTracker {
  private readonly header = Buffer.alloc(5);
  private headerLength = 0;
  private remaining = 0;
  private lastType = 0;
  private lastStatus = 0;

  feed(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.remaining === 0) {
        this.header[this.headerLength++] = chunk[i++]!;
        if (this.headerLength === 5) {
          this.lastType = this.header[0]!;
          this.lastStatus = 0;
          this.remaining = this.header.readInt32BE(1) - 4;
          this.headerLength = 0;
        }
      } else {
        const n = Math.min(this.remaining, chunk.length - i);
        if (this.lastType === MSG_READY) this.lastStatus = chunk[i]!; // its body is the one status byte
        i += n;
        this.remaining -= n;
      }
    }
  }

  /** The backend finished a cycle and no transaction is open: the session is free for others. */
  get idle(): boolean {
    return this.remaining === 0 && this.headerLength === 0 && this.lastType === MSG_READY && this.lastStatus === STATUS_IDLE;
  }
}

/**
 * Serves one PGlite session to many wire-protocol connections, one *conversation* at a time (see the
 * header comment). All access to the database goes through {@link pump}, so it is strictly serial.
 */
class WireServer {
  private readonly server: net.Server;
  private readonly connections = new Set<Connection>();
  /** Connections with queued messages waiting for the session, first come first served. */
  private readonly waiting: Connection[] = [];
  private owner: Connection | undefined;
  private db: PGlite | undefined;
  private pumping: Promise<void> | undefined;
  private nextId = 1;
  private closing = false;
  private dirty = false; // something ran since the last checkpoint
  private busy = false; // a message is executing: its connection is not idle, however long it takes
  private lastCheckpoint = Date.now();
  private timer: NodeJS.Timeout | undefined;
  /** PGlite aborted (its WebAssembly process exited): every further call would hang. */
  crashed = false;

  constructor(private readonly options: WireServerOptions) {
    this.server = net.createServer((socket) => this.accept(socket));
  }

  /** Binds the port before the database is opened, so a second instance fails fast and touches nothing. */
  listen(port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException): void => {
        if (error.code === "EADDRINUSE") {
          reject(
            new Error(
              `embedded PostgreSQL: port ${port} on ${this.options.host} is in use — is another \`npm start\` running? ` +
                "Stop it, or set PROMPTCRAFT_EMBEDDED_PORT to another port.",
              { cause: error },
            ),
          );
        } else {
          reject(new Error(`embedded PostgreSQL: cannot listen on ${this.options.host}:${port}: ${error.message}`, { cause: error }));
        }
      };
      this.server.once("error", onError);
      this.server.listen({ port, host: this.options.host, exclusive: true }, () => {
        this.server.off("error", onError);
        this.server.on("error", (error) => this.options.log(`embedded PostgreSQL: server error: ${error.message}`));
        resolve((this.server.address() as net.AddressInfo).port);
      });
    });
  }

  /** The database is open: start serving the connections that queued up meanwhile. */
  attach(db: PGlite): void {
    this.db = db;
    const { checkpointIntervalMs, idleInTransactionTimeoutMs } = this.options;
    const tick = Math.min(checkpointIntervalMs || Infinity, idleInTransactionTimeoutMs ? 1000 : Infinity);
    if (Number.isFinite(tick)) {
      this.timer = setInterval(() => this.housekeeping(), tick);
      this.timer.unref(); // never what keeps a process alive
    }
    this.schedule();
  }

  /** Start failed: drop everything without touching a database. */
  async abort(): Promise<void> {
    this.closing = true;
    for (const conn of this.connections) conn.socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Stops accepting, disconnects every client (rolling back what they left open) and waits until the session is quiet. */
  async close(): Promise<void> {
    this.closing = true;
    if (this.timer) clearInterval(this.timer);
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const conn of [...this.connections]) {
      this.terminate(conn, "57P01", "terminating connection due to administrator command");
    }
    this.schedule();
    while (this.pumping) await this.pumping;
    await closed;
  }

  private accept(socket: net.Socket): void {
    socket.setNoDelay(true);
    const conn = new Connection(this.nextId++, socket);
    if (this.closing) {
      socket.destroy();
      return;
    }
    // Like PostgreSQL, the limit is reported after the startup packet, as a proper ErrorResponse,
    // so that the client says "too many clients" instead of "connection terminated unexpectedly".
    if (this.connections.size >= this.options.maxConnections) conn.rejected = true;
    else this.connections.add(conn);
    socket.on("data", (data: Buffer) => this.receive(conn, data));
    socket.on("error", () => {}); // ECONNRESET and friends: 'close' follows and handles it
    socket.on("close", () => this.disconnected(conn));
  }

  private receive(conn: Connection, data: Buffer): void {
    if (conn.closed) return;
    conn.buffer = conn.buffer.length === 0 ? data : Buffer.concat([conn.buffer, data]);
    let queued = false;
    while (!conn.closed) {
      const buf = conn.buffer;
      if (!conn.started) {
        if (buf.length < 8) break;
        const length = buf.readInt32BE(0);
        const code = buf.readInt32BE(4);
        if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
          conn.socket.write("N"); // no TLS / GSS encryption: the client continues in plain text
          conn.buffer = buf.subarray(8);
          continue;
        }
        if (code === CANCEL_REQUEST) {
          if (buf.length < 16) break;
          this.cancelRequested(buf.readInt32BE(8), buf.readInt32BE(12));
          conn.socket.end();
          conn.closed = true;
          return;
        }
        if (length < 8 || length > 10_000) return this.protocolViolation(conn, "invalid length of startup packet");
        if (buf.length < length) break;
        if (code >>> 16 !== 3) {
          return this.fatal(conn, "0A000", `unsupported frontend protocol ${code >>> 16}.${code & 0xffff}: server supports 3.0`);
        }
        conn.started = true;
        conn.buffer = buf.subarray(length);
        if (conn.rejected) return this.fatal(conn, "53300", "sorry, too many clients already");
        conn.queue.push(Buffer.from(buf.subarray(0, length)));
        queued = true;
        continue;
      }
      if (buf.length < 5) break;
      const length = buf.readInt32BE(1);
      if (length < 4 || length > MAX_MESSAGE_BYTES) return this.protocolViolation(conn, `invalid message length ${length}`);
      if (buf.length < length + 1) break;
      const message = Buffer.from(buf.subarray(0, length + 1)); // a copy: the buffer it came from is reused
      conn.buffer = buf.subarray(length + 1);
      if (message[0] === MSG_TERMINATE) {
        // Never forwarded: PGlite has one backend for all. The client is gone; clean up after it.
        conn.socket.end();
        this.disconnected(conn);
        return;
      }
      if (conn.discardUntilSync) {
        // The rest of a cancelled sequence: skipped as a backend skips after an error, up to the Sync.
        if (message[0] === MSG_SYNC) {
          conn.discardUntilSync = false;
          conn.send(readyForQuery(STATUS_IDLE));
        }
        continue;
      }
      conn.queue.push(rewriteIfUnsupported(message));
      queued = true;
    }
    if (queued) {
      if (conn !== this.owner && !this.waiting.includes(conn)) this.waiting.push(conn);
      this.schedule();
    }
  }

  private disconnected(conn: Connection): void {
    if (conn.closed && !this.connections.has(conn)) return;
    conn.closed = true;
    conn.queue.length = 0;
    this.connections.delete(conn);
    const i = this.waiting.indexOf(conn);
    if (i >= 0) this.waiting.splice(i, 1);
    // If it owned the session, the pump rolls back what it left open before anyone else runs. If
    // not, it still has to drop the prepared statements it made, or reset the session if it was the
    // last client: queue it so that the pump does that in turn.
    if (conn !== this.owner && (conn.statements.size > 0 || this.connections.size === 0)) this.waiting.push(conn);
    this.schedule();
  }

  private schedule(): void {
    if (this.db === undefined || this.pumping !== undefined) return;
    this.pumping = this.pump().finally(() => {
      this.pumping = undefined;
      // Work may have arrived between the pump's last look and now.
      if (this.hasWork()) this.schedule();
    });
  }

  private hasWork(): boolean {
    if (this.db === undefined || this.crashed) return false;
    if (this.owner) return this.owner.closed || this.owner.queue.length > 0;
    return this.waiting.length > 0;
  }

  /** The only code that talks to PGlite. Runs until no connection can make progress. */
  private async pump(): Promise<void> {
    const db = this.db!;
    while (!this.crashed) {
      const continuing = this.owner !== undefined;
      const conn = this.owner ?? this.waiting.shift();
      if (conn === undefined) break;
      this.owner = conn;
      if (conn.closed) {
        await this.cleanUpAfter(db, conn);
        this.owner = undefined;
        if (this.connections.size === 0 && !this.crashed) await this.resetSession(db);
        continue;
      }
      const message = conn.queue.shift();
      if (message === undefined) {
        if (continuing) break; // the owner is mid-transaction and its client is thinking: everyone waits
        this.owner = undefined; // nothing to do after all; do not hold the session for it
        continue;
      }
      this.track(conn, message);
      this.busy = true;
      // The startup answer is collected to put this connection's backend key in it.
      const startup: Buffer[] | undefined = conn.keyed ? undefined : [];
      try {
        await db.runExclusive(() =>
          db.execProtocolRawStream(message, {
            onRawData: (chunk) => {
              if (startup) {
                startup.push(Buffer.from(chunk));
                return;
              }
              conn.frames.feed(chunk);
              conn.send(Buffer.from(chunk)); // copy: PGlite reuses its output buffer
            },
          }),
        );
        if (startup) {
          conn.keyed = true;
          const answer = withBackendKey(Buffer.concat(startup), conn.id, conn.secretKey);
          conn.frames.feed(answer);
          conn.send(answer);
        }
      } catch (error) {
        this.engineCrashed(error);
        break;
      } finally {
        this.busy = false;
      }
      this.dirty = true;
      conn.idleSince = Date.now();
      // A client that went away meanwhile stays the owner for one more turn: the loop then cleans up after it.
      if (conn.frames.idle && !conn.closed) {
        this.owner = undefined;
        if (conn.queue.length > 0) this.waiting.push(conn); // fair: back of the line
      }
    }
  }

  /**
   * A CancelRequest for backend `pid`. Only a statement still waiting for the session can be
   * cancelled: its messages are dropped and it fails with 57014, like a statement cancelled in a
   * lock wait (the connection is not in a transaction — it would own the session otherwise).
   */
  private cancelRequested(pid: number, secretKey: number): void {
    let target: Connection | undefined;
    for (const conn of this.connections) if (conn.id === pid) target = conn;
    if (!target || target.secretKey !== secretKey || !target.keyed || target.closed) return;
    if (target === this.owner || target.queue.length === 0) return; // running (not interruptible) or idle: nothing to do
    let ended = false;
    while (!ended && target.queue.length > 0) {
      const type = target.queue.shift()![0];
      ended = type === MSG_QUERY || type === MSG_FUNCTION_CALL || type === MSG_SYNC;
    }
    target.send(errorResponse("ERROR", "57014", "canceling statement due to user request"));
    if (ended) target.send(readyForQuery(STATUS_IDLE));
    else target.discardUntilSync = true;
    if (target.queue.length === 0) {
      const i = this.waiting.indexOf(target);
      if (i >= 0) this.waiting.splice(i, 1);
    }
  }

  /** Remembers the named prepared statements a connection creates and closes. */
  private track(conn: Connection, message: Buffer): void {
    const type = message[0];
    if (type === MSG_PARSE) {
      const name = cstring(message, 5);
      if (name) conn.statements.add(name);
    } else if (type === MSG_CLOSE && message[5] === 0x53 /* 'S' */) {
      conn.statements.delete(cstring(message, 6));
    }
  }

  /**
   * What PostgreSQL does when a backend's client vanishes: abandon COPY, end the extended-protocol
   * sequence, roll back the transaction, drop its prepared statements. Output is discarded.
   */
  private async cleanUpAfter(db: PGlite, conn: Connection): Promise<void> {
    const messages: Uint8Array[] = [frame(MSG_COPY_FAIL, cstringBytes("client disconnected")), frame(MSG_SYNC)];
    for (const name of conn.statements) {
      messages.push(frame(MSG_CLOSE, Buffer.concat([Buffer.from("S"), cstringBytes(name)])));
    }
    if (conn.statements.size > 0) messages.push(frame(MSG_SYNC));
    try {
      await db.runExclusive(async () => {
        for (const message of messages) await db.execProtocolRawStream(message, { onRawData: () => {} });
      });
      if (db.isInTransaction()) {
        this.options.log(`embedded PostgreSQL: connection #${conn.id} went away inside a transaction; rolled back`);
        await db.exec("ROLLBACK");
      }
    } catch (error) {
      this.engineCrashed(error);
    }
  }

  /** Nobody is connected: give the next clients a fresh session (no leaked SET, temp tables, LISTENs). */
  private async resetSession(db: PGlite): Promise<void> {
    try {
      await db.exec("DISCARD ALL");
    } catch (error) {
      this.options.log(`embedded PostgreSQL: DISCARD ALL failed: ${errorMessage(error)}`);
    }
  }

  private housekeeping(): void {
    const { idleInTransactionTimeoutMs, checkpointIntervalMs, log } = this.options;
    const owner = this.owner;
    if (
      idleInTransactionTimeoutMs > 0 &&
      owner !== undefined &&
      !this.busy &&
      !owner.closed &&
      owner.queue.length === 0 &&
      this.waiting.length > 0 &&
      Date.now() - owner.idleSince > idleInTransactionTimeoutMs
    ) {
      log(
        `embedded PostgreSQL: connection #${owner.id} held the session idle for over ${idleInTransactionTimeoutMs} ms ` +
          `while ${this.waiting.length} other(s) waited; terminating it (a transaction left open, or a query awaited ` +
          "on another connection from inside a transaction?)",
      );
      this.terminate(owner, "25P03", "terminating connection due to idle-in-transaction timeout (embedded engine)");
    }
    if (
      checkpointIntervalMs > 0 &&
      this.dirty &&
      Date.now() - this.lastCheckpoint >= checkpointIntervalMs &&
      this.owner === undefined &&
      this.pumping === undefined &&
      this.db !== undefined &&
      !this.crashed
    ) {
      const db = this.db;
      this.dirty = false;
      this.lastCheckpoint = Date.now();
      // Through the pump's slot so that it never lands between two messages of a client.
      this.pumping = db
        .exec("CHECKPOINT")
        .then(() => undefined)
        .catch((error: unknown) => log(`embedded PostgreSQL: checkpoint failed: ${errorMessage(error)}`))
        .finally(() => {
          this.pumping = undefined;
          if (this.hasWork()) this.schedule();
        });
    }
  }

  private engineCrashed(error: unknown): void {
    if (this.crashed) return;
    this.crashed = true;
    this.options.log(
      `embedded PostgreSQL: PGlite failed and cannot continue (${errorMessage(error)}); disconnecting all clients — restart it`,
    );
    for (const conn of [...this.connections]) this.fatal(conn, "XX000", "the embedded PostgreSQL engine failed; restart it");
  }

  /** Sends a FATAL error and drops the connection (cleanup follows through 'close'). */
  private terminate(conn: Connection, code: string, message: string): void {
    this.fatal(conn, code, message);
    this.disconnected(conn);
  }

  private fatal(conn: Connection, code: string, message: string): void {
    if (!conn.socket.destroyed) {
      conn.socket.end(errorResponse("FATAL", code, message));
      setTimeout(() => conn.socket.destroy(), 1000).unref();
    }
    conn.closed = true;
  }

  private protocolViolation(conn: Connection, message: string): void {
    this.fatal(conn, "08P01", message);
    this.disconnected(conn);
  }
}

/** Replaces a `COPY … FROM STDIN` statement (simple Query or Parse) by one that raises a clear error inside the backend. */
function rewriteIfUnsupported(message: Buffer): Buffer {
  const type = message[0];
  if (type === MSG_QUERY) {
    const sql = cstring(message, 5);
    if (COPY_FROM_STDIN.test(sql)) return frame(MSG_QUERY, cstringBytes(COPY_FROM_STDIN_REFUSAL));
  } else if (type === MSG_PARSE) {
    const name = cstring(message, 5);
    const sqlStart = 5 + Buffer.byteLength(name) + 1;
    const sql = cstring(message, sqlStart);
    if (COPY_FROM_STDIN.test(sql)) {
      // COPY takes no parameters, so the replacement declares none either.
      return frame(MSG_PARSE, Buffer.concat([cstringBytes(name), cstringBytes(COPY_FROM_STDIN_REFUSAL), Buffer.alloc(2)]));
    }
  }
  return message;
}

function cstring(buf: Buffer, start: number): string {
  const end = buf.indexOf(0, start);
  return buf.toString("utf8", start, end < 0 ? buf.length : end);
}

function cstringBytes(s: string): Buffer {
  return Buffer.from(`${s}\0`, "utf8");
}

/** A typed protocol message: type byte, int32 length (counting itself), body. */
function frame(type: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.alloc(5 + body.length);
  out[0] = type;
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

function readyForQuery(status: number): Buffer {
  return frame(MSG_READY, Buffer.from([status]));
}

/** The backend's startup answer with its BackendKeyData replaced by `pid` / `secretKey`. */
function withBackendKey(answer: Buffer, pid: number, secretKey: number): Buffer {
  for (let i = 0; i + 5 <= answer.length; i += 1 + answer.readInt32BE(i + 1)) {
    if (answer[i] === MSG_BACKEND_KEY && answer.readInt32BE(i + 1) === 12) {
      answer.writeInt32BE(pid, i + 5);
      answer.writeInt32BE(secretKey, i + 9);
    }
  }
  return answer;
}

function errorResponse(severity: string, code: string, message: string): Buffer {
  const fields = Buffer.concat([
    Buffer.from("S"),
    cstringBytes(severity),
    Buffer.from("V"),
    cstringBytes(severity),
    Buffer.from("C"),
    cstringBytes(code),
    Buffer.from("M"),
    cstringBytes(message),
    Buffer.from([0]),
  ]);
  return frame(0x45 /* 'E' */, fields);
}

function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === "object" && error !== null && "message" in error) return String(error.message);
  return String(error);
}
