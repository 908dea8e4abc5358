import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { create, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createServiceClient } from "@promptcraft/client";
import { contentService } from "@promptcraft/content";
import { addVersion, createEntity, setLabel } from "@promptcraft/content/fixtures";
import { createKnex, dbTypes, pg, type Knex } from "@promptcraft/db";
import { identityService, issueAccessToken, type KeyRing } from "@promptcraft/identity";
import { loadConfig, startService, type RunningService } from "@promptcraft/platform";
import { ContentService, GetEntityRequestSchema } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { createTenant, createUser, provisionTestDatabase } from "@promptcraft/testing";
import { migrateAll } from "../database.js";
import { grpcFrame, hasH2load, median } from "./h2load.js";
import { GRPC_HEADERS, grpcThroughput, startServerProcess, stop, type Server } from "./transport.js";

/** One statement as the service's knex sent it (native `$n` placeholders). */
interface Statement {
  sql: string;
  bindings: readonly unknown[];
}

/** The statements `call` makes the service's knex send, in order. */
async function captureStatements(db: Knex, call: () => Promise<unknown>): Promise<Statement[]> {
  const statements: Statement[] = [];
  const record = (q: { sql: string; bindings?: unknown[] }) => statements.push({ sql: q.sql, bindings: q.bindings ?? [] });
  db.on("query", record);
  try {
    await call();
  } finally {
    db.removeListener("query", record);
  }
  return statements;
}

/** `statements` with every binding equal to `from` replaced by `to` (the same transaction on another entity). */
function retarget(statements: Statement[], from: string, to: string): Statement[] {
  return statements.map((s) => ({ sql: s.sql, bindings: s.bindings.map((b) => (b === from ? to : b)) }));
}

/** Completed units per second of `workers` loops, each running `unit` until `seconds` have passed. */
async function closedLoop(workers: number, seconds: number, unit: (worker: number, iteration: number) => Promise<void>): Promise<number> {
  const end = Date.now() + seconds * 1000;
  let done = 0;
  await Promise.all(
    Array.from({ length: workers }, async (_, worker) => {
      for (let i = 0; Date.now() < end; i++) {
        await unit(worker, i);
        done++;
      }
    }),
  );
  return done / seconds;
}

/** Runs the statements of one call on one pooled `pg` connection (a transaction when they hold BEGIN … COMMIT). */
async function replay(pool: pg.Pool, statements: Statement[]): Promise<void> {
  const client = await pool.connect();
  try {
    for (const s of statements) await client.query(s.sql, s.bindings as unknown[]);
  } finally {
    client.release();
  }
}

/** Paired measurements: `a` and `b` per round in alternating order; prints each round; returns the per-round values. */
async function paired(
  rounds: number,
  names: [string, string],
  a: () => Promise<number>,
  b: () => Promise<number>,
  unit: string,
): Promise<{ a: number[]; b: number[]; ratio: number[] }> {
  const out = { a: [] as number[], b: [] as number[], ratio: [] as number[] };
  for (let round = 1; round <= rounds; round++) {
    let x: number, y: number;
    if (round % 2) {
      x = await a();
      y = await b();
    } else {
      y = await b();
      x = await a();
    }
    out.a.push(x);
    out.b.push(y);
    out.ratio.push(x / y);
    console.log(`  round ${round}: ${names[0]} ${x.toFixed(0)} ${unit}, ${names[1]} ${y.toFixed(0)} ${unit} (ratio ${(x / y).toFixed(2)})`);
  }
  return out;
}

/** CPU time (user + system, ms) a process has used so far; Linux `/proc`, NaN elsewhere. */
function processCpuMs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    // utime and stime are fields 14 and 15 of stat(5), in clock ticks (100 per second on Linux).
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return Number.NaN;
  }
}

/** Runs `measure` (returning calls per second) and reports it with the CPU `pid` spent per call. */
async function withCpu(pid: number, seconds: number, measure: () => Promise<number>): Promise<{ rate: number; cpuMsPerCall: number }> {
  const before = processCpuMs(pid);
  const rate = await measure();
  return { rate, cpuMsPerCall: (processCpuMs(pid) - before) / (rate * seconds) };
}

function verdict(ratio: number, goal: number, atLeast: boolean): string {
  return (atLeast ? ratio >= goal : ratio <= goal) ? "✓" : "✗ misses the goal";
}

/**
 * `npm run bench content`: the content service against minimal paths to the same data.
 *
 * (a) GetEntity (current version) over gRPC against the minimal path: a bare grpc-js server
 *     (bare-content-server.ts) answering the same GetEntity with ONE `pg` query — the very SELECT
 *     the service sends (captured from its own knex), on a `pg` pool of the same size, no auth, no
 *     tenant context. Both driven by h2load at concurrency 32, side by side; service CPU per call
 *     read from /proc for each server process. Goals: ratio ≥ 0.6, service CPU ≤ 0.4 ms per call.
 * (b) UpdateEntity (a new version each call: the title alternates) from 32 concurrent gRPC client
 *     loops, each on its own entity, against the captured transaction of the same update replayed
 *     through `pg` on the same entities. h2load cannot vary the body, and an unchanged body writes
 *     nothing, hence a client loop here (in this process; the service's CPU per call is its own
 *     process's). Goal ≥ 0.5.
 * (c) GetEntity as of a past time on an entity with 1 version vs one with 1,000 (h2load, same
 *     concurrency). Goal: at most 1.5× apart.
 * (d) GetEntity by name vs by id, both with label `production` (h2load, same concurrency): the name
 *     is resolved by a subquery of the same statement. Goal: by name ≥ 0.9 of by id.
 * Statistics are taken (ANALYZE) after loading and after (b), as autovacuum would before long.
 * Paired runs per round in alternating order; medians and the median of per-round ratios.
 */
export async function benchContent(args: string[]): Promise<number> {
  if (!(await hasH2load())) {
    console.error("h2load not found: install Debian's nghttp2-client (sudo apt-get install nghttp2-client)");
    return 1;
  }
  const rounds = Number(args[0] ?? process.env.BENCH_ROUNDS ?? 3);
  const seconds = Number(process.env.BENCH_SECONDS ?? 5);
  const concurrency = 32;
  const poolSize = Number(process.env.BENCH_POOL ?? 8);
  const database = await provisionTestDatabase(process.env, (line) => console.log(line));
  const db = createKnex({ url: database.url, poolMax: 4, applicationName: "promptcraft-bench" });
  let identity: RunningService | undefined;
  let content: Server | undefined;
  let minimal: Server | undefined;
  // The same type parsers as the services (timestamps to the microsecond), so both sides parse alike.
  const pool = new pg.Pool({ connectionString: database.url, max: poolSize, application_name: "promptcraft-bench-pg", types: dbTypes });
  try {
    await migrateAll(database.url);
    const base = { DATABASE_URL: database.url, GRPC_PORT: "0", CONNECT_PORT: "0", LOG_LEVEL: "silent" };
    identity = await startService(identityService, loadConfig(identityService.config, base));
    const identityUrl = `http://127.0.0.1:${identity.grpcPort}`;
    const tenantId = await createTenant(db);
    const userId = await createUser(db, tenantId, "editor");
    const { token } = await issueAccessToken(identity.state as KeyRing, { issuer: "promptcraft-identity", ttlS: 3600 }, { tenantId, userId, role: "editor", sessionId: randomUUID() });
    const auth = { authorization: `Bearer ${token}` };

    console.log("content benchmark: preparing entities (one with 1,000 versions) …");
    const body = { content: { text: "You are a helpful assistant. ".repeat(20) }, tags: ["bench", "prompt"], visibility: "tenant" as const };
    const { id: readId, name: readName } = await createEntity(db, tenantId, userId, { title: "read me", ...body });
    await setLabel(db, tenantId, readId, "production", 1, userId);
    const { id: shortId } = await createEntity(db, tenantId, userId, { title: "one version", ...body });
    const { id: longId } = await createEntity(db, tenantId, userId, { title: "v1", ...body });
    for (let v = 2; v <= 1000; v++) await addVersion(db, tenantId, longId, userId, { title: `v${v}` });
    const writeIds: string[] = [];
    for (let w = 0; w < concurrency; w++) writeIds.push((await createEntity(db, tenantId, userId, { title: "bench A", ...body })).id);
    const { rows: middle } = await db.raw<{ rows: { valid_from: Date }[] }>("select valid_from from entity_version where entity_id = ? and version = 500", [longId]);
    const longAsOf = new Date(middle[0]!.valid_from.getTime() + 1);
    const shortAsOf = new Date();
    // Statistics, as autovacuum leaves them after a bulk write (the bench is faster than its first
    // pass): with none, the planner takes the exclusion constraint's GiST index for an entity's
    // versions and an as-of read walks the whole history (1.8× at 1,000 versions; docs/benchmarks.md).
    const analyze = () => db.raw("analyze entity, entity_version, entity_label");
    await analyze();

    // What the service sends to the database for each call, captured from an in-process instance
    // (after a first call, so that the 5 s credential-status cache is warm and adds nothing).
    console.log("capturing the service's SQL for GetEntity and UpdateEntity …");
    const capture = await startService(contentService, loadConfig(contentService.config, { ...base, IDENTITY_URL: identityUrl, DB_POOL_MAX: "2" }));
    let getStatements: Statement[];
    let updateStatements: Statement[][];
    try {
      const client = createServiceClient(ContentService, `http://127.0.0.1:${capture.grpcPort}`, { protocol: "grpc" });
      const captureDb = capture.deps.db;
      await client.getEntity({ entityId: readId }, { headers: auth });
      getStatements = await captureStatements(captureDb, () => client.getEntity({ entityId: readId }, { headers: auth }));
      const template = writeIds[0]!;
      const update = (title: string) => () => client.updateEntity({ entity: { id: template, title }, updateMask: { paths: ["title"] } }, { headers: auth });
      updateStatements = [await captureStatements(captureDb, update("bench B")), await captureStatements(captureDb, update("bench A"))];
    } finally {
      await capture.close();
    }

    content = await startServerProcess("./content-server.js", [], {
      DATABASE_URL: database.url,
      IDENTITY_URL: identityUrl,
      DB_POOL_MAX: String(poolSize),
    });
    const servicePid = content.process.pid!;
    const h2 = { seconds, connections: 4, streams: concurrency / 4, headers: { ...GRPC_HEADERS, ...auth } };
    const getBody = (request: MessageInitShape<typeof GetEntityRequestSchema>) => grpcFrame(toBinary(GetEntityRequestSchema, create(GetEntityRequestSchema, request)));
    const getRate = (server: Server, request: MessageInitShape<typeof GetEntityRequestSchema>) => () =>
      grpcThroughput(server, "/promptcraft.content.v1.ContentService/GetEntity", { ...h2, body: getBody(request) });
    const getEntityRate = (server: Server, entityId: string, asOf?: Date) => getRate(server, { entityId, ...(asOf ? { asOfTime: timestampFromDate(asOf) } : {}) });
    // Fail fast (not as "0 req/s") if the calls do not succeed.
    for (const request of [{ entityId: readId }, { name: readName, label: "production" }]) {
      await grpcThroughput(content, "/promptcraft.content.v1.ContentService/GetEntity", { ...h2, seconds: 1, body: getBody(request) });
    }

    // The minimal path: the service's one SELECT for GetEntity (readAsTenant reports it as knex's "query" event).
    const select = getStatements.find((st) => /^\s*select\b/i.test(st.sql) && st.bindings.includes(readId));
    if (!select) throw new Error("no SELECT captured for GetEntity");
    minimal = await startServerProcess("./bare-content-server.js", [], {
      DATABASE_URL: database.url,
      DB_POOL_MAX: String(poolSize),
      BENCH_SQL: select.sql,
      BENCH_BINDINGS: JSON.stringify(select.bindings),
      BENCH_ENTITY_ID: readId,
    });
    const minimalServer = minimal;
    // Warm both up for a run's length, unmeasured: the service's first rounds were slower in every run
    // (V8 still optimising, a fresh table not yet analysed), which a median of few rounds does not hide.
    for (const server of [content, minimalServer]) {
      await grpcThroughput(server, "/promptcraft.content.v1.ContentService/GetEntity", { ...h2, seconds, body: getBody({ entityId: readId }) });
    }

    console.log(
      `\n(a) GetEntity, current version: the service (gRPC; it sends ${getStatements.length} statement(s) for it, in one round trip) vs the minimal path (bare grpc-js + one pg query); h2load ${h2.connections} connections × ${h2.streams} streams, pool ${poolSize} each; ${seconds}s per run, ${rounds} rounds`,
    );
    const cpu = { service: [] as number[], minimal: [] as number[] };
    const a = await paired(
      rounds,
      ["service", "minimal"],
      async () => {
        const r = await withCpu(servicePid, seconds, getEntityRate(content!, readId));
        cpu.service.push(r.cpuMsPerCall);
        return r.rate;
      },
      async () => {
        const r = await withCpu(minimalServer.process.pid!, seconds, getEntityRate(minimalServer, readId));
        cpu.minimal.push(r.cpuMsPerCall);
        return r.rate;
      },
      "req/s",
    );
    console.log(`  server CPU per call (median): service ${median(cpu.service).toFixed(3)} ms, minimal path ${median(cpu.minimal).toFixed(3)} ms`);

    console.log(
      `\n(b) UpdateEntity (new version per call): gRPC (${concurrency} client loops in this process, one entity each) vs its ${updateStatements[0]!.length} statements through pg (${concurrency} loops, pool ${poolSize}); ${seconds}s per run, ${rounds} rounds`,
    );
    const rpcClient = createServiceClient(ContentService, `http://127.0.0.1:${content.ports[0]}`, { protocol: "grpc" });
    // Each entity's title alternates A → B → A; a worker continues from wherever its entity is.
    const titles = writeIds.map(() => "bench A");
    const versionsBefore = await countVersions(db, writeIds);
    const updateCpu: number[] = [];
    const b = await paired(
      rounds,
      ["gRPC", "pg"],
      async () => {
        const r = await withCpu(servicePid, seconds, () =>
          closedLoop(concurrency, seconds, async (w) => {
            titles[w] = titles[w] === "bench A" ? "bench B" : "bench A";
            await rpcClient.updateEntity({ entity: { id: writeIds[w]!, title: titles[w] }, updateMask: { paths: ["title"] } }, { headers: auth });
          }),
        );
        updateCpu.push(r.cpuMsPerCall);
        return r.rate;
      },
      () =>
        closedLoop(concurrency, seconds, async (w) => {
          const toB = titles[w] === "bench A";
          titles[w] = toB ? "bench B" : "bench A";
          await replay(pool, retarget(updateStatements[toB ? 0 : 1]!, writeIds[0]!, writeIds[w]!));
        }),
      "updates/s",
    );
    const written = (await countVersions(db, writeIds)) - versionsBefore;
    const expected = Math.round([...b.a, ...b.b].reduce((s, r) => s + r * seconds, 0));
    console.log(`  versions written: ${written} of ${expected} calls (every call writes one); service CPU per call (median) ${median(updateCpu).toFixed(3)} ms`);

    console.log(`\n(c) GetEntity as of a past time: 1 version vs 1,000 versions in the history (h2load as in (a)); ${seconds}s per run, ${rounds} rounds`);
    await analyze(); // after (b)'s thousands of new versions
    const c = await paired(rounds, ["1 version", "1,000 versions"], getEntityRate(content, shortId, shortAsOf), getEntityRate(content, longId, longAsOf), "req/s");

    console.log(`\n(d) GetEntity with label production: by name vs by id (h2load as in (a)); ${seconds}s per run, ${rounds} rounds`);
    const d = await paired(rounds, ["by name", "by id"], getRate(content, { name: readName, label: "production" }), getRate(content, { entityId: readId, label: "production" }), "req/s");

    const ra = median(a.ratio);
    const rb = median(b.ratio);
    const rc = median(c.ratio);
    const rd = median(d.ratio);
    console.log("");
    const cpuA = median(cpu.service);
    console.log(
      `  (a) median GetEntity service ${median(a.a).toFixed(0)} req/s, minimal path ${median(a.b).toFixed(0)} req/s; ratio ${ra.toFixed(2)} (goal ≥ 0.60) ${verdict(ra, 0.6, true)}; service CPU ${cpuA.toFixed(3)} ms per call (goal ≤ 0.40) ${verdict(cpuA, 0.4, false)}`,
    );
    console.log(`  (b) median UpdateEntity gRPC ${median(b.a).toFixed(0)} /s, pg ${median(b.b).toFixed(0)} /s; ratio ${rb.toFixed(2)} (goal ≥ 0.50) ${verdict(rb, 0.5, true)}`);
    console.log(
      `  (c) median as-of 1 version ${median(c.a).toFixed(0)} req/s, 1,000 versions ${median(c.b).toFixed(0)} req/s; ${rc.toFixed(2)}× apart (goal ≤ 1.50) ${verdict(Math.max(rc, 1 / rc), 1.5, false)}`,
    );
    console.log(`  (d) median by name ${median(d.a).toFixed(0)} req/s, by id ${median(d.b).toFixed(0)} req/s; by name / by id ${rd.toFixed(2)} (goal ≥ 0.90) ${verdict(rd, 0.9, true)}`);
    return 0;
  } finally {
    if (content) await stop(content);
    if (minimal) await stop(minimal);
    await identity?.close();
    await pool.end();
    await db.destroy();
    await database.stop();
  }
}

async function countVersions(db: Knex, entityIds: string[]): Promise<number> {
  const { rows } = await db.raw<{ rows: { n: string }[] }>("select count(*)::text as n from entity_version where entity_id = any(?::uuid[])", [entityIds]);
  return Number(rows[0]!.n);
}
