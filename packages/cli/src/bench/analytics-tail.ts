import { randomUUID } from "node:crypto";
import { createServiceClient } from "@promptcraft/client";
import { createKnex, dbTypes, pg } from "@promptcraft/db";
import { identityService, issueAccessToken, type KeyRing } from "@promptcraft/identity";
import { followEvents, loadConfig, logEnd, startService, type RunningService } from "@promptcraft/platform";
import { AnalyticsService } from "@promptcraft/proto/promptcraft/analytics/v1/analytics_service_pb";
import { createTenant, createUser, provisionTestDatabase } from "@promptcraft/testing";
import { migrateAll } from "../database.js";
import { startServerProcess, stop, type Server } from "./transport.js";

/**
 * `npm run bench analytics -- tail` (for now `npm run bench analytics-tail`): writers append events to the log in transactions that stay open
 * a random time before they commit (late commits everywhere), while three readers follow the same
 * tenant — the platform's reader in process, TailAuditEvents over gRPC, and a naive reader by id
 * (`id > last`, what the seed did) for contrast. Prints, per reader: delivered, skipped, duplicated,
 * out of commit order, and commit→delivery p50/p99.
 *
 * Two rounds side by side at the same write rate (each writer pauses 0–BENCH_TAIL_MAX_DELAY_MS,
 * default 5 s, per transaction): short transactions (the pause after the commit: the readers' own
 * latency, bounded by their poll interval) and long ones (the pause before the commit: delivery waits
 * for every older transaction to end, so the p99 is about the longest transaction, by design).
 *
 * Needs PostgreSQL (DATABASE_URL): the embedded engine serialises sessions, so no transaction can
 * stay open while another commits and there is nothing to measure.
 */

interface Options {
  events: number;
  writers: number;
  maxDelayMs: number;
  batch: number;
  /** Pause before the commit (late commits) or after it (the same write rate, short transactions). */
  holdOpen?: boolean;
}

/** From the environment (the bench dispatcher passes numbers only): BENCH_TAIL_EVENTS, _WRITERS, _MAX_DELAY_MS, _BATCH. */
function options(env: NodeJS.ProcessEnv): Options {
  const value = (name: string, fallback: number) => {
    const v = Number(env[`BENCH_TAIL_${name}`] ?? fallback);
    return Number.isFinite(v) && v >= 0 ? v : fallback;
  };
  return { events: value("EVENTS", 100_000), writers: value("WRITERS", 32), maxDelayMs: value("MAX_DELAY_MS", 5000), batch: Math.max(1, value("BATCH", 100)) };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** What one reader saw. */
class Tally {
  readonly latencies: number[] = [];
  readonly seen = new Set<string>();
  duplicates = 0;
  outOfOrder = 0;
  private last: [bigint, bigint] = [-1n, -1n];

  constructor(readonly name: string) {}

  deliver(key: string, position: [bigint, bigint] | undefined, committedAt: Map<string, number>, now: number): void {
    if (this.seen.has(key)) this.duplicates++;
    else this.seen.add(key);
    if (position) {
      const [tx, id] = position;
      if (tx < this.last[0] || (tx === this.last[0] && id <= this.last[1])) this.outOfOrder++;
      this.last = position;
    }
    const at = committedAt.get(key);
    if (at !== undefined) this.latencies.push(now - at);
  }
}

/** One round: writers with commit delays in [0, maxDelayMs), three readers; returns the tallies. */
interface RoundResult {
  tallies: Tally[];
  seconds: number;
  total: number;
  /** Writer transactions' open time, p99 and max (ms): the event loop's lateness adds to the planned pause. */
  holdP99: number;
  holdMax: number;
  foreignHoldMs: number;
}

type TailClient = ReturnType<typeof createServiceClient<typeof AnalyticsService>>;

async function round(url: string, tenantId: string, tail: TailClient, o: Options): Promise<RoundResult> {
  const db = createKnex({ url, poolMax: 4, applicationName: "promptcraft-bench-tail-reader" });
  const writerPool = new pg.Pool({ connectionString: url, max: o.writers, application_name: "promptcraft-bench-tail-writer", types: dbTypes });
  const naivePool = new pg.Pool({ connectionString: url, max: 1, application_name: "promptcraft-bench-tail-naive", types: dbTypes });
  const committedAt = new Map<string, number>();
  /** How long each writer transaction was open (begin to commit acknowledged), ms. */
  const holds: number[] = [];
  /** The oldest transaction with an xid in another database of the cluster, sampled (ms): it holds our horizon too. */
  let foreignHoldMs = 0;
  const reader = new Tally("platform reader (in process)");
  const grpcTail = new Tally("TailAuditEvents (gRPC)");
  const naive = new Tally("naive reader by id");
  const stop = new AbortController();
  const runId = randomUUID().slice(0, 8);
  const keyOf = (payload: Record<string, unknown> | undefined) => `${String(payload?.w)}:${String(payload?.n)}`;
  try {
    const start = await logEnd({ db, service: "analytics" });
    const readers = [
      (async () => {
        for await (const batch of followEvents({ db, service: "analytics", tenantId, pollIntervalMs: 50, batchSize: 1000, signal: stop.signal }, start)) {
          const now = Date.now();
          for (const e of batch.events) reader.deliver(keyOf(e.payload), [e.transactionId, e.id], committedAt, now);
        }
      })(),
      (async () => {
        try {
          for await (const res of tail.tailAuditEvents({ startCursor: `${start.transactionId}-${start.id}` }, { signal: stop.signal })) {
            if (res.item.case !== "event") continue;
            const e = res.item.value;
            grpcTail.deliver(keyOf(e.payload), [BigInt(e.transactionId), BigInt(e.id)], committedAt, Date.now());
          }
        } catch (err) {
          if (!stop.signal.aborted) throw err;
        }
      })(),
      (async () => {
        // The seed's reader: remembers the largest id seen and asks for larger ones.
        let last = "0";
        while (!stop.signal.aborted) {
          const client = await naivePool.connect();
          try {
            await client.query("begin");
            await client.query("select set_config('role', 'promptcraft_analytics', true), set_config('app.tenant_id', $1, true)", [tenantId]);
            const { rows } = await client.query<{ id: string; payload: Record<string, unknown> }>(
              "select id::text, payload from event where tenant_id = $1 and id > $2 order by id limit 1000",
              [tenantId, last],
            );
            await client.query("commit");
            const now = Date.now();
            for (const r of rows) naive.deliver(keyOf(r.payload), undefined, committedAt, now);
            if (rows.length) last = rows[rows.length - 1]!.id;
          } finally {
            client.release();
          }
          await new Promise((r) => setTimeout(r, 50));
        }
      })(),
    ];

    const sampler = (async () => {
      while (!stop.signal.aborted) {
        const { rows } = await naivePool.query<{ ms: number | null }>(
          `select extract(epoch from max(now() - xact_start)) * 1000 as ms from pg_stat_activity
           where backend_xid is not null and datname is distinct from current_database()`,
        );
        foreignHoldMs = Math.max(foreignHoldMs, Number(rows[0]?.ms ?? 0));
        await new Promise((r) => setTimeout(r, 250));
      }
    })();
    readers.push(sampler);
    const began = Date.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: o.writers }, async (_, w) => {
        for (;;) {
          const from = next;
          if (from >= o.events) return;
          const count = Math.min(o.batch, o.events - from);
          next += count;
          const client = await writerPool.connect();
          try {
            const opened = Date.now();
            await client.query("begin");
            await client.query("select set_config('role', 'promptcraft_content', true), set_config('app.tenant_id', $1, true)", [tenantId]);
            await client.query(
              `insert into event (tenant_id, aggregate_type, event_type, actor_type, payload)
               select $1, 'entity', 'content.entity.updated', 'system', jsonb_build_object('w', $2::text, 'n', g)
               from generate_series($3::int, $4::int) g`,
              [tenantId, `${runId}-${w}`, from, from + count - 1],
            );
            // The same random pause in both rounds (so the same write rate); only where it falls differs.
            const pause = Math.random() * o.maxDelayMs;
            if (o.holdOpen) await new Promise((r) => setTimeout(r, pause));
            await client.query("commit");
            const at = Date.now();
            holds.push(at - opened);
            for (let n = from; n < from + count; n++) committedAt.set(`${runId}-${w}:${n}`, at);
            if (!o.holdOpen) await new Promise((r) => setTimeout(r, pause));
          } finally {
            client.release();
          }
        }
      }),
    );
    const seconds = (Date.now() - began) / 1000;
    // Drain: the two correct readers must catch up; the naive one gets the same time.
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && (reader.seen.size < o.events || grpcTail.seen.size < o.events)) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 500));
    stop.abort();
    await Promise.allSettled(readers);
    holds.sort((a, b) => a - b);
    return { tallies: [reader, grpcTail, naive], seconds, total: o.events, holdP99: percentile(holds, 99), holdMax: holds[holds.length - 1] ?? 0, foreignHoldMs };
  } finally {
    stop.abort();
    await Promise.allSettled([db.destroy(), writerPool.end(), naivePool.end()]);
  }
}

function report(title: string, r: RoundResult): Map<string, [number, number]> {
  console.log(`\n${title}: ${r.total} events written in ${r.seconds.toFixed(1)} s`);
  console.log(
    `  writer transactions open p99 ${r.holdP99.toFixed(0)} ms, max ${r.holdMax.toFixed(0)} ms; oldest transaction of another database seen: ${r.foreignHoldMs.toFixed(0)} ms (it holds the horizon too)`,
  );
  console.log("  reader                          delivered  skipped  duplicated  out of order  p50 ms   p99 ms");
  const figures = new Map<string, [number, number]>();
  for (const t of r.tallies) {
    const sorted = [...t.latencies].sort((a, b) => a - b);
    const [p50, p99] = [percentile(sorted, 50), percentile(sorted, 99)];
    figures.set(t.name, [p50, p99]);
    console.log(
      `  ${t.name.padEnd(32)}${String(t.seen.size).padStart(9)}${String(r.total - t.seen.size).padStart(9)}${String(t.duplicates).padStart(12)}${String(t.outOfOrder).padStart(14)}${p50.toFixed(0).padStart(8)}${p99.toFixed(0).padStart(9)}`,
    );
  }
  return figures;
}

/** The tail benchmark (sizes from the environment, see {@link options}). Exit 1 if a correct reader skipped, duplicated or reordered. */
export async function benchAnalyticsTail(): Promise<number> {
  const o = options(process.env);
  const database = await provisionTestDatabase(process.env, (line) => console.log(line));
  if (database.kind === "embedded") {
    console.error("the tail benchmark needs PostgreSQL (DATABASE_URL): the embedded engine runs one transaction at a time");
    await database.stop();
    return 2;
  }
  let identity: RunningService | undefined;
  let analytics: Server | undefined;
  const db = createKnex({ url: database.url, poolMax: 2, applicationName: "promptcraft-bench-tail" });
  try {
    await migrateAll(database.url);
    const base = { DATABASE_URL: database.url, GRPC_PORT: "0", CONNECT_PORT: "0", LOG_LEVEL: "silent" };
    identity = await startService(identityService, loadConfig(identityService.config, base));
    const pollMs = process.env.AUDIT_TAIL_POLL_MS ?? "200";
    analytics = await startServerProcess("./analytics-server.js", [], {
      DATABASE_URL: database.url,
      IDENTITY_URL: `http://127.0.0.1:${identity.grpcPort}`,
      AUDIT_TAIL_POLL_MS: pollMs,
      LOG_LEVEL: "silent",
    });
    console.log(
      `analytics tail benchmark: ${o.writers} writers, ${o.events} events in transactions of ${o.batch}; TailAuditEvents (its own process) polls every ${pollMs} ms when idle, the in-process reader every 50 ms`,
    );
    const results: { title: string; figures: Map<string, [number, number]>; failed: boolean }[] = [];
    for (const [title, holdOpen] of [
      [`short transactions (commit at once, then pause 0–${o.maxDelayMs} ms)`, false],
      [`long transactions (pause 0–${o.maxDelayMs} ms, then commit)`, true],
    ] as const) {
      const tenantId = await createTenant(db);
      const adminId = await createUser(db, tenantId, "admin");
      const { token } = await issueAccessToken(identity.state as KeyRing, { issuer: "promptcraft-identity", ttlS: 3600 }, { tenantId, userId: adminId, role: "admin", sessionId: randomUUID() });
      const tail = createServiceClient(AnalyticsService, `http://127.0.0.1:${analytics.ports[0]}`, { protocol: "grpc", token });
      const r = await round(database.url, tenantId, tail, { ...o, holdOpen });
      const figures = report(title, r);
      results.push({ title, figures, failed: r.tallies.slice(0, 2).some((t) => t.seen.size !== r.total || t.duplicates > 0 || t.outOfOrder > 0) });
    }
    const [short, long] = results as [(typeof results)[0], (typeof results)[0]];
    console.log("\nratio long/short of the p50 and p99 (what holding transactions open costs the readers):");
    for (const [name, [p50, p99]] of long.figures) {
      const [s50, s99] = short.figures.get(name) ?? [NaN, NaN];
      if (name !== "naive reader by id") console.log(`  ${name}: p50 ${(p50 / s50).toFixed(1)}×, p99 ${(p99 / s99).toFixed(1)}×`);
    }
    console.log(
      "\nEvents are delivered only once every older transaction has ended (pg_snapshot_xmin), so with transactions held up to " +
        `${o.maxDelayMs} ms the commit→delivery p99 is close to that hold time whatever the poll interval: the 500 ms goal holds for short ` +
        "transactions only. The naive reader's skips are the late commits the pair cursor exists for.",
    );
    return results.some((r) => r.failed) ? 1 : 0;
  } finally {
    if (analytics) await stop(analytics);
    await identity?.close();
    await db.destroy();
    await database.stop();
  }
}
