import { afterAll, beforeAll, describe, test, vi } from "vitest";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs, { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { serialize } from "pg-protocol";
import { startEmbeddedPostgres, type EmbeddedPostgres } from "./embedded.js";

const TENANT_A = "11111111-1111-4111-8111-111111111111";
const TENANT_B = "22222222-2222-4222-8222-222222222222";

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  return client;
}

describe("embedded PostgreSQL (in memory, port 0)", () => {
  let engine: EmbeddedPostgres;
  let client: pg.Client;

  beforeAll(async () => {
    engine = await startEmbeddedPostgres({ port: 0 });
    client = await connect(engine.url);
  });
  afterAll(async () => {
    await client.end();
    await engine.stop();
  });

  test("serves the wire protocol on the port it reports", async () => {
    assert.notEqual(engine.port, 0);
    assert.equal(engine.url, `postgres://postgres@127.0.0.1:${engine.port}/postgres`);
    const { rows } = await client.query<{ version: string }>("select version()");
    assert.match(rows[0]!.version, /^PostgreSQL \d+/);
  });

  test("pgvector and the contrib extensions load; vector distance works", async () => {
    for (const ext of ["vector", "btree_gist", "pg_trgm", "pgcrypto", '"uuid-ossp"']) {
      await client.query(`create extension if not exists ${ext}`);
    }
    const { rows } = await client.query<{ d: number; c: number }>(
      "select '[1,2,3]'::vector <-> '[4,5,6]'::vector as d, '[1,0]'::vector <=> '[0,1]'::vector as c",
    );
    assert.ok(Math.abs(rows[0]!.d - Math.sqrt(27)) < 1e-6);
    assert.ok(Math.abs(rows[0]!.c - 1) < 1e-6);

    await client.query("create table doc (id int primary key, embedding vector(3))");
    await client.query("insert into doc values (1, '[1,0,0]'), (2, '[0,1,0]'), (3, '[0.9,0.1,0]')");
    await client.query("create index doc_hnsw on doc using hnsw (embedding vector_cosine_ops)");
    const near = await client.query<{ id: number }>("select id from doc order by embedding <=> $1 limit 2", ["[1,0,0]"]);
    assert.deepEqual(near.rows.map((r) => r.id), [1, 3]);
  });

  test("btree_gist exclusion constraints reject overlapping validity", async () => {
    await client.query(`create table version_span (
      entity int not null, during tstzrange not null,
      exclude using gist (entity with =, during with &&))`);
    await client.query("insert into version_span values (1, tstzrange('2024-01-01', '2024-02-01'))");
    await assert.rejects(
      client.query("insert into version_span values (1, tstzrange('2024-01-15', null))"),
      (error: { code?: string }) => error.code === "23P01",
    );
  });

  test("SET LOCAL role + set_config tenant: forced RLS hides the other tenant's rows", async () => {
    await client.query(`
      create role embedded_test_service nologin;
      create table note (tenant_id uuid not null, body text not null);
      alter table note enable row level security;
      alter table note force row level security;
      create policy note_tenant on note
        using (tenant_id = (select current_setting('app.tenant_id', true))::uuid);
      grant select, insert on note to embedded_test_service;
      insert into note values ('${TENANT_A}', 'a'), ('${TENANT_B}', 'b');`);
    await client.query("begin");
    await client.query("select set_config('role', 'embedded_test_service', true), set_config('app.tenant_id', $1, true)", [TENANT_A]);
    const seen = await client.query<{ body: string; who: string }>("select body, current_user as who from note");
    await client.query("commit");
    assert.deepEqual(seen.rows, [{ body: "a", who: "embedded_test_service" }]);
    // LOCAL means it ended with the transaction: nothing leaks to the next user of the session.
    const after = await client.query<{ who: string }>("select current_user as who");
    assert.equal(after.rows[0]!.who, "postgres");
  });

  test("a transaction on one connection blocks the others until it ends; both complete", async () => {
    await client.query("create table counter (k int primary key, n int not null)");
    await client.query("insert into counter values (1, 0)");
    const other = await connect(engine.url);
    try {
      await client.query("begin");
      await client.query("update counter set n = n + 1 where k = 1");
      let answered = false;
      const blocked = other.query<{ n: number }>("select n from counter where k = 1").then((r) => {
        answered = true;
        return r;
      });
      await sleep(200);
      assert.equal(answered, false, "the other connection must wait for the open transaction");
      await client.query("commit");
      assert.equal((await blocked).rows[0]!.n, 1, "and then see its committed result");

      // Two clients, each a read-modify-write transaction, concurrently: both finish, no lost update.
      const bump = async (c: pg.Client): Promise<void> => {
        for (let i = 0; i < 20; i++) {
          await c.query("begin");
          const { rows } = await c.query<{ n: number }>("select n from counter where k = 1");
          await c.query("update counter set n = $1 where k = 1", [rows[0]!.n + 1]);
          await c.query("commit");
        }
      };
      await Promise.all([bump(client), bump(other)]);
      const { rows } = await client.query<{ n: number }>("select n from counter where k = 1");
      assert.equal(rows[0]!.n, 41);
    } finally {
      await other.end();
    }
  });

  test("extended-protocol sequences of two connections do not interleave", async () => {
    // Raw frames, because pg sends Parse…Sync in one write and the race is in the server's queue.
    const a = await RawClient.open(engine.port);
    const b = await RawClient.open(engine.port);
    try {
      a.send(parse("select 'A' as who"));
      await sleep(50);
      b.send(parse("select 'B' as who"), bind(), execute(), sync());
      a.send(bind(), execute(), sync());
      assert.deepEqual(await a.untilReady(), ["A"]);
      assert.deepEqual(await b.untilReady(), ["B"]);

      // An error on one connection must not make the backend skip the other's messages.
      a.send(parse("select 1/0"), bind(), execute());
      await sleep(50);
      b.send(parse("select 'B2'"), bind(), execute(), sync());
      a.send(sync());
      await assert.rejects(a.untilReady(), /division by zero/);
      assert.deepEqual(await b.untilReady(), ["B2"]);
    } finally {
      a.close();
      b.close();
    }

    const pool = new pg.Pool({ connectionString: engine.url, max: 8 });
    try {
      const results = await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          i % 5 === 0
            ? pool.query("select 1 / ($1::int - $1::int)", [i]).then(
                () => "no error?",
                (error: { code?: string }) => error.code,
              )
            : pool.query<{ v: string }>(`select $1::text || '-${i % 7}' as v`, [String(i)]).then((r) => r.rows[0]!.v),
        ),
      );
      results.forEach((r, i) => assert.equal(r, i % 5 === 0 ? "22012" : `${i}-${i % 7}`));
    } finally {
      await pool.end();
    }
  });

  test("a client that disconnects mid-transaction is rolled back and does not wedge the engine", async () => {
    await client.query("create table scratch (v text)");
    const quitter = await connect(engine.url);
    await quitter.query("begin");
    await quitter.query("insert into scratch values ('uncommitted')");
    await quitter.end();

    const killed = await RawClient.open(engine.port);
    killed.send(query("begin; insert into scratch values ('also uncommitted')"));
    await killed.untilReady();
    killed.socket.destroy(); // no Terminate message: the connection just drops

    const { rows } = await client.query<{ n: string }>("select count(*) as n from scratch");
    assert.equal(rows[0]!.n, "0");
    await client.query("begin");
    await client.query("insert into scratch values ('ok')");
    await client.query("commit");
  });

  test("a client's named prepared statements go with it", async () => {
    const first = await connect(engine.url);
    assert.equal((await first.query<{ v: number }>({ name: "stmt", text: "select 1 as v" })).rows[0]!.v, 1);
    await first.end();
    const second = await connect(engine.url);
    try {
      // Its own backend would never have seen "stmt"; here the session is shared, so it must be gone.
      assert.equal((await second.query<{ v: number }>({ name: "stmt", text: "select 2 as v" })).rows[0]!.v, 2);
    } finally {
      await second.end();
    }
  });

  test("a CancelRequest fails a statement waiting for the session with 57014; keys are per connection; the connection stays usable", async () => {
    const holder = await connect(engine.url);
    const waiter = await connect(engine.url);
    try {
      assert.notDeepEqual(backendKey(holder), backendKey(waiter), "each connection has its own backend key");
      await holder.query("begin");
      await holder.query("select 1");
      // Simple protocol, then extended (parameters): both wait for the holder's transaction.
      for (const run of [() => waiter.query("select 'never' as v"), () => waiter.query("select $1::text as v", ["never"])]) {
        const waiting = run().then(
          () => "answered",
          (error: { code?: string }) => error.code,
        );
        await sleep(100); // let the statement reach the server's queue
        await cancel(engine.port, waiter);
        assert.equal(await waiting, "57014");
      }
      // The holder is between statements: a cancel does nothing, as on PostgreSQL.
      await cancel(engine.port, holder);
      assert.equal((await holder.query<{ v: number }>("select 2 as v")).rows[0]!.v, 2);
      await holder.query("commit");
      assert.equal((await waiter.query<{ v: number }>("select 3 as v")).rows[0]!.v, 3);
    } finally {
      await holder.end();
      await waiter.end();
    }
  });

  test("COPY FROM STDIN is refused cleanly (it would kill PGlite); the engine stays up", async () => {
    await assert.rejects(client.query("copy scratch from stdin"), (error: { code?: string }) => error.code === "0A000");
    const { rows } = await client.query<{ one: number }>("select 1 as one");
    assert.equal(rows[0]!.one, 1);
  });

  test("a taken port fails fast with a clear message", async () => {
    await assert.rejects(startEmbeddedPostgres({ port: engine.port }), /port \d+ .*is in use.*PROMPTCRAFT_EMBEDDED_PORT/);
  });
});

describe("embedded PostgreSQL persisted in a data directory", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), "promptcraft-embedded-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("data survives stop and start; the directory is locked while in use", async () => {
    const dataDir = path.join(dir, "pgdata");
    const first = await startEmbeddedPostgres({ dataDir, port: 0, maxConnections: 2, idleInTransactionTimeoutMs: 500 });
    try {
      const c = await connect(first.url);
      await c.query("create extension if not exists vector");
      await c.query("create table kept (id int primary key, embedding vector(2))");
      await c.query("insert into kept values (1, '[1,2]')");
      await c.end();
      assert.ok(existsSync(`${dataDir}.lock`));
      await assert.rejects(startEmbeddedPostgres({ dataDir, port: 0 }), /is in use by process/);

      // Over maxConnections: a proper "too many clients" error, not a dropped socket.
      const keep = [await connect(first.url), await connect(first.url)];
      await assert.rejects(connect(first.url), /too many clients/);

      // A transaction left idle while another connection waits is ended, not waited for forever.
      const [holder, waiter] = keep as [pg.Client, pg.Client];
      holder.on("error", () => {}); // the FATAL arrives as an 'error' event too
      await holder.query("begin");
      await holder.query("insert into kept values (2, '[3,4]')");
      const { rows } = await waiter.query<{ n: string }>("select count(*) as n from kept");
      assert.equal(rows[0]!.n, "1", "the abandoned transaction was rolled back");
      await assert.rejects(holder.query("commit"));
      await waiter.end();
    } finally {
      await first.stop();
    }
    assert.equal(existsSync(`${dataDir}.lock`), false);

    const second = await startEmbeddedPostgres({ dataDir, port: 0 });
    try {
      const c = await connect(second.url);
      const { rows } = await c.query<{ id: number; e: string }>("select id, embedding::text as e from kept");
      assert.deepEqual(rows, [{ id: 1, e: "[1,2]" }]);
      await c.end();
    } finally {
      await second.stop();
    }
  });

  test("a persisted engine is durable: fsync on, and every commit fsyncs the WAL", async () => {
    // Count the host fsyncs by file: PGlite's own fsync would be a no-op, so these come from our NODEFS hook.
    const syncedInodes: number[] = [];
    const fsyncSync = fs.fsyncSync.bind(fs);
    const spy = vi.spyOn(fs, "fsyncSync").mockImplementation((fd: number) => {
      syncedInodes.push(fs.fstatSync(fd).ino);
      fsyncSync(fd);
    });
    const dataDir = path.join(dir, "durable");
    const engine = await startEmbeddedPostgres({ dataDir, port: 0 });
    try {
      const c = await connect(engine.url);
      const setting = async (name: string) => (await c.query<Record<string, string>>(`show ${name}`)).rows[0]![name];
      assert.equal(await setting("fsync"), "on");
      assert.equal(await setting("wal_sync_method"), "fsync");
      await c.query("create table durable (id int primary key)");

      const walInodes = new Set(
        readdirSync(path.join(dataDir, "pg_wal"))
          .filter((name) => /^[0-9A-F]{24}$/.test(name))
          .map((name) => statSync(path.join(dataDir, "pg_wal", name)).ino),
      );
      const walSyncs = () => syncedInodes.filter((ino) => walInodes.has(ino)).length;
      const before = walSyncs();
      for (let id = 1; id <= 5; id++) await c.query("insert into durable values ($1)", [id]);
      assert.ok(walSyncs() - before >= 5, `5 commits, ${walSyncs() - before} WAL fsyncs`);
      await c.end();
    } finally {
      await engine.stop();
      spy.mockRestore();
    }
  });

  test("a data directory left by a killed process opens, with its committed data", async () => {
    const dataDir = path.join(dir, "crashed");
    // The child runs the package's build: plain node cannot import this TypeScript source.
    const module = createRequire(import.meta.url).resolve("@promptcraft/db");
    // A child process commits a row, reports, and is then killed with SIGKILL: no stop(), no close().
    const script = `
      import { startEmbeddedPostgres } from ${JSON.stringify(module)};
      import pg from "pg";
      const engine = await startEmbeddedPostgres({ dataDir: ${JSON.stringify(dataDir)}, port: 0 });
      const c = new pg.Client({ connectionString: engine.url });
      await c.connect();
      await c.query("create table survivor (v text)");
      await c.query("insert into survivor values ('committed')");
      await c.query("begin");
      await c.query("insert into survivor values ('in flight')");
      process.stdout.write("ready\\n");
      setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
      cwd: path.dirname(module),
      stdio: ["ignore", "pipe", "inherit"],
    });
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on("data", (d: Buffer) => {
          if (d.toString().includes("ready")) resolve();
        });
        child.once("exit", (code) => reject(new Error(`child exited early with ${code}`)));
      });
    } finally {
      child.kill("SIGKILL");
    }
    await new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve(null) : child.once("exit", resolve)));
    assert.ok(existsSync(`${dataDir}.lock`), "the killed run left its lock behind");

    const lines: string[] = [];
    const engine = await startEmbeddedPostgres({ dataDir, port: 0, log: (l) => lines.push(l) });
    try {
      assert.ok(lines.some((l) => l.includes("did not shut down cleanly")));
      const c = await connect(engine.url);
      const { rows } = await c.query<{ v: string }>("select v from survivor");
      assert.deepEqual(rows, [{ v: "committed" }]);
      await c.end();
    } finally {
      await engine.stop();
    }
  });
});

// --- a minimal raw wire-protocol client, to drive message-level interleavings pg never produces ---

/** The backend key pg received at startup (public fields of pg's Client that @types/pg leaves out). */
function backendKey(client: pg.Client): [number, number] {
  const { processID, secretKey } = client as unknown as { processID: number; secretKey: number };
  return [processID, secretKey];
}

/** Sends a CancelRequest for `client`'s backend on a connection of its own; resolves when the server closed it. */
async function cancel(port: number, client: pg.Client): Promise<void> {
  const socket = net.connect(port, "127.0.0.1");
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  socket.end(serialize.cancel(...backendKey(client)));
  await new Promise((resolve) => socket.once("close", resolve));
}

function msg(type: string, body: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.alloc(5 + body.length);
  out.write(type, 0, "latin1");
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}
const cstr = (s: string): Buffer => Buffer.from(`${s}\0`);
const parse = (sql: string): Buffer => msg("P", Buffer.concat([cstr(""), cstr(sql), Buffer.alloc(2)]));
const bind = (): Buffer => msg("B", Buffer.concat([cstr(""), cstr(""), Buffer.alloc(6)]));
const execute = (): Buffer => msg("E", Buffer.concat([cstr(""), Buffer.alloc(4)]));
const sync = (): Buffer => msg("S");
const query = (sql: string): Buffer => msg("Q", cstr(sql));

class RawClient {
  private buffer = Buffer.alloc(0);
  private rows: string[] = [];
  private error: string | undefined;
  private waiter: (() => void) | undefined;
  private readyCount = 0;

  private constructor(readonly socket: net.Socket) {
    socket.on("data", (d: Buffer) => this.onData(d));
  }

  static async open(port: number): Promise<RawClient> {
    const socket = net.connect(port, "127.0.0.1");
    await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
    const client = new RawClient(socket);
    const params = Buffer.concat([cstr("user"), cstr("postgres"), cstr("database"), cstr("postgres"), Buffer.from([0])]);
    const startup = Buffer.alloc(8 + params.length);
    startup.writeInt32BE(startup.length, 0);
    startup.writeInt32BE(196608, 4);
    params.copy(startup, 8);
    socket.write(startup);
    await client.untilReady();
    return client;
  }

  send(...messages: Buffer[]): void {
    this.socket.write(Buffer.concat(messages));
  }

  /** Resolves with the first column of each DataRow up to the next ReadyForQuery, or rejects with the ErrorResponse. */
  async untilReady(): Promise<string[]> {
    while (this.readyCount === 0) {
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
    this.readyCount--;
    const rows = this.rows;
    const error = this.error;
    this.rows = [];
    this.error = undefined;
    if (error !== undefined) throw new Error(error);
    return rows;
  }

  close(): void {
    this.socket.end(msg("X"));
  }

  private onData(data: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, data]);
    while (this.buffer.length >= 5) {
      const length = this.buffer.readInt32BE(1);
      if (this.buffer.length < length + 1) break;
      const type = String.fromCharCode(this.buffer[0]!);
      const body = this.buffer.subarray(5, length + 1);
      this.buffer = this.buffer.subarray(length + 1);
      if (type === "D") {
        const len = body.readInt32BE(2);
        this.rows.push(body.toString("utf8", 6, 6 + len));
      } else if (type === "E") {
        for (let i = 0; i < body.length && body[i] !== 0; ) {
          const end = body.indexOf(0, i + 1);
          if (body[i] === 0x4d /* 'M' */) this.error = body.toString("utf8", i + 1, end);
          i = end + 1;
        }
      } else if (type === "Z") {
        this.readyCount++;
      }
    }
    this.waiter?.();
  }
}
