import { randomUUID } from "node:crypto";
import { timestampFromDate, timestampDate } from "@bufbuild/protobuf/wkt";
import { createServiceClient } from "@promptcraft/client";
import { createKnex, pg } from "@promptcraft/db";
import { identityService, issueAccessToken, type KeyRing } from "@promptcraft/identity";
import { loadConfig, startService, type RunningService } from "@promptcraft/platform";
import { AnalyticsService } from "@promptcraft/proto/promptcraft/analytics/v1/analytics_service_pb";
import { Granularity, UsageDimension, UsageKind } from "@promptcraft/proto/promptcraft/analytics/v1/resources_pb";
import { createTenant, createUser, provisionTestDatabase } from "@promptcraft/testing";
import { migrateAll } from "../database.js";
import { median } from "./h2load.js";
import { startServerProcess, stop, type Server } from "./transport.js";

const DAY = 86_400_000;

function percentile(values: number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
}

/**
 * `npm run bench analytics -- summary [--scale N]`: GetUsageSummary over 30 days for one tenant
 * with 1M events (× N), grouped by day and model, over gRPC to analytics in its own process (the
 * daily and hourly rollups plus a tail of 10,000 events not yet rolled up), beside the same answer from a plain GROUP BY
 * over `usage_event` through `pg`; then freshness: from an acknowledged IngestUsageEvents to the
 * event being counted by GetUsageSummary. Events are generated in SQL (generate_series): an
 * entity's events use one model, 10 entities × 2 versions, 3 users, 10 % renders. Prints p50/p95
 * of each side and the ratio of the medians. DATABASE_URL, else the embedded engine;
 * BENCH_SUMMARY_CALLS (default 50), BENCH_PLAIN_CALLS (default 5), BENCH_SUMMARY_TAIL (default
 * 10,000) override; BENCH_SUMMARY_TENANT (a tenant id of an earlier run on the same database) measures
 * on that tenant's events plus a new tail instead of generating them.
 */
export async function benchAnalyticsSummary(args: string[]): Promise<number> {
  const scaleAt = args.indexOf("--scale");
  const scale = scaleAt >= 0 ? Number(args[scaleAt + 1]) : 1;
  let total = 1_000_000 * scale;
  const calls = Number(process.env.BENCH_SUMMARY_CALLS ?? 50);
  const plainCalls = Number(process.env.BENCH_PLAIN_CALLS ?? 5);
  // What the refresher has not rolled up yet: what arrives in one of its intervals (5 s), not a
  // share of the history — 10,000 is 2,000 events/s.
  const tail = Math.min(total, Number(process.env.BENCH_SUMMARY_TAIL ?? 10_000));
  const database = await provisionTestDatabase(process.env, (line) => console.log(line));
  let identity: RunningService | undefined;
  let analytics: Server | undefined;
  const db = createKnex({ url: database.url, poolMax: 2, applicationName: "promptcraft-bench-summary" });
  const pool = new pg.Pool({ connectionString: database.url, max: 1 });
  try {
    await migrateAll(database.url);
    const base = { DATABASE_URL: database.url, GRPC_PORT: "0", CONNECT_PORT: "0", LOG_LEVEL: "silent" };
    identity = await startService(identityService, loadConfig(identityService.config, base));
    // The bench runs the refresher itself (below), so that the tail is the 1 % it leaves.
    analytics = await startServerProcess("./analytics-server.js", [], {
      DATABASE_URL: database.url,
      IDENTITY_URL: `http://127.0.0.1:${identity.grpcPort}`,
      USAGE_ROLLUP_INTERVAL_MS: "600000",
      LOG_LEVEL: "silent",
    });
    // BENCH_SUMMARY_TENANT: measure on the events an earlier run left for that tenant (no generation).
    const reused = process.env.BENCH_SUMMARY_TENANT;
    const tenantId = reused ?? (await createTenant(db));

    // Partitions for the 30 days (the default policy keeps 7 behind).
    await pool.query("update partition_policy set premake_behind = 32 where parent_table = 'usage_event'");
    await pool.query("select run_partition_maintenance('usage_event')");
    const existing = reused
      ? (
          await pool.query<{ users: string[] | null; entities: string[] | null; n: string }>(
            `select (select array_agg(distinct user_id) from usage_rollup_daily where tenant_id = $1) as users,
                    (select array_agg(distinct entity_id) from usage_rollup_daily where tenant_id = $1) as entities,
                    (select count(*) from usage_event where tenant_id = $1)::text as n`,
            [tenantId],
          )
        ).rows[0]!
      : null;
    const users = existing?.users?.length === 3 ? existing.users : [randomUUID(), randomUUID(), randomUUID()];
    const entities = existing?.entities?.length === 10 ? existing.entities : Array.from({ length: 10 }, () => randomUUID());
    if (existing) total = Number(existing.n) + tail;
    const insert = (n: number, from: number) =>
      pool.query(
        `insert into usage_event (tenant_id, id, occurred_at, kind, user_id, entity_id, entity_version, label, model, tokens_in, tokens_out, cost_usd, latency_ms)
         select $1::uuid, gen_random_uuid(), now() - random() * interval '30 days',
                case when g % 10 = 0 then 'render' else 'llm_call' end,
                ($2::uuid[])[1 + g % 3], ($3::uuid[])[1 + g % 10], 1 + (g / 10) % 2, 'production',
                (array['gpt-4o-mini', 'gpt-4o', 'claude-sonnet', 'llama-3-70b'])[1 + (g % 10) % 4],
                100 + g % 900, 50 + g % 400, (1000 + g % 5000) / 1000000.0, 50 + (g * 7919) % 3000
         from generate_series($4::bigint, $4::bigint + $5::bigint - 1) g`,
        [tenantId, users, entities, from, n],
      );
    // Small transactions, rolled up as they come (as the refresher does): a long writing transaction
    // would hold back the cluster's xmin horizon, which every event-log reader on the server waits for.
    const chunk = 50_000;
    const rolled = total - tail;
    const t0 = performance.now();
    let rollupMs = 0;
    for (let from = existing ? rolled : 0; from < rolled; from += chunk) {
      await insert(Math.min(chunk, rolled - from), from);
      const r0 = performance.now();
      await pool.query("select * from refresh_usage_rollup()");
      rollupMs += performance.now() - r0;
    }
    console.log(
      `analytics summary benchmark (${database.kind} database): ${total.toLocaleString("en")} events of one tenant over 30 days (${existing ? `those of tenant ${tenantId}, reused` : `generated in ${((performance.now() - t0 - rollupMs) / 1000).toFixed(1)} s`})`,
    );
    const { rows: rr } = await pool.query<{ hourly: string; daily: string }>(
      "select (select count(*) from usage_rollup where tenant_id = $1)::text as hourly, (select count(*) from usage_rollup_daily where tenant_id = $1)::text as daily",
      [tenantId],
    );
    const rollupRows = `${Number(rr[0]!.hourly).toLocaleString("en")} hourly and ${Number(rr[0]!.daily).toLocaleString("en")} daily rollup rows`;
    console.log(existing ? `  ${rollupRows}` : `  rolled up as generated (a refresher run per ${chunk.toLocaleString("en")} events): ${(rollupMs / 1000).toFixed(1)} s in all, ${rollupRows}`);
    // An earlier run's tail is rolled up now, so that the tail is this run's alone.
    if (existing) await pool.query("select * from refresh_usage_rollup()");
    await insert(total - rolled, rolled);
    await pool.query("analyze usage_event; analyze usage_rollup; analyze usage_rollup_daily");
    console.log(`  tail not yet rolled up: ${(total - rolled).toLocaleString("en")} events`);
    // The credential is made now: generating 10M events outlasts an access token.
    const userId = await createUser(db, tenantId, "editor");
    const { token } = await issueAccessToken(identity.state as KeyRing, { issuer: "promptcraft-identity", ttlS: 3600 }, { tenantId, userId, role: "editor", sessionId: randomUUID() });
    const client = createServiceClient(AnalyticsService, `http://127.0.0.1:${analytics.ports[0]}`, { protocol: "grpc", token });

    const start = new Date(Date.now() - 30 * DAY);
    const request = { startTime: timestampFromDate(start), granularity: Granularity.DAY, groupBy: [UsageDimension.MODEL] };
    const viaRpc = async () => client.getUsageSummary(request);
    const plainSql = `select date_trunc('day', occurred_at at time zone 'UTC') at time zone 'UTC' as day, coalesce(model, '') as model, count(*)::bigint as n,
                             sum(tokens_in)::bigint, sum(tokens_out)::bigint, sum(cost_usd), avg(latency_ms),
                             percentile_cont(array[0.5, 0.95, 0.99]) within group (order by latency_ms), count(distinct user_id)
                      from usage_event where tenant_id = $1 and occurred_at >= $2 and occurred_at < now()
                      group by 1, 2 order by 1, 2`;
    const viaPlain = async () => (await pool.query<{ day: Date; model: string; n: string }>(plainSql, [tenantId, new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth(), start.getUTCDate()))])).rows;

    // Same answer: counts per day and model.
    const a = await viaRpc();
    const p = await viaPlain();
    const key = (day: Date, model: string, n: bigint | string) => `${day.toISOString()}|${model}|${n}`;
    const fromRpc = a.buckets.map((b) => key(timestampDate(b.startTime!), b.model, b.totals!.eventCount)).sort();
    const fromPlain = p.map((r) => key(r.day, r.model, r.n)).sort();
    const same = JSON.stringify(fromRpc) === JSON.stringify(fromPlain) && a.totals!.eventCount === BigInt(total);
    console.log(`  answers agree (counts per day × model, ${fromRpc.length} buckets, total ${a.totals!.eventCount}): ${same ? "yes" : "NO"}`);

    const rpcMs: number[] = [];
    for (let i = 0; i < calls; i++) {
      const t = performance.now();
      await viaRpc();
      rpcMs.push(performance.now() - t);
    }
    const plainMs: number[] = [];
    for (let i = 0; i < plainCalls; i++) {
      const t = performance.now();
      await viaPlain();
      plainMs.push(performance.now() - t);
    }
    const goal = scale >= 10 ? 100 : 50;
    const p95 = percentile(rpcMs, 0.95);
    console.log(`  GetUsageSummary (rollups + tail, gRPC) : median ${median(rpcMs).toFixed(1)} ms, p95 ${p95.toFixed(1)} ms (${calls} calls; goal p95 ≤ ${goal} ms) ${p95 <= goal ? "✓" : "✗ above goal"}`);
    console.log(`  plain GROUP BY over usage_event (pg)  : median ${median(plainMs).toFixed(1)} ms, p95 ${percentile(plainMs, 0.95).toFixed(1)} ms (${plainCalls} calls)`);
    console.log(`  ratio plain / rollups (medians)       : ${(median(plainMs) / median(rpcMs)).toFixed(1)}×`);

    // Freshness: acknowledged → counted.
    const fresh: number[] = [];
    let firstRead = 0;
    const rounds = 20;
    for (let i = 0; i < rounds; i++) {
      const model = `fresh-${i}`;
      await client.ingestUsageEvents({ events: [{ id: randomUUID(), kind: UsageKind.LLM_CALL, model, occurTime: timestampFromDate(new Date()) }] });
      const acked = performance.now();
      for (let attempt = 0; ; attempt++) {
        const s = await client.getUsageSummary({ startTime: timestampFromDate(new Date(Date.now() - 2 * 3_600_000)), granularity: Granularity.HOUR, groupBy: [UsageDimension.MODEL] });
        if (s.buckets.some((b) => b.model === model)) {
          fresh.push(performance.now() - acked);
          if (attempt === 0) firstRead++;
          break;
        }
        if (attempt > 100) throw new Error(`event of ${model} never counted`);
      }
    }
    console.log(`  freshness (ingest ack → counted)      : counted on the first read ${firstRead}/${rounds}; median ${median(fresh).toFixed(1)} ms, max ${Math.max(...fresh).toFixed(1)} ms (the read itself)`);
    return same ? 0 : 1;
  } finally {
    await pool.end();
    await db.destroy();
    if (analytics) await stop(analytics);
    await identity?.close();
    await database.stop();
  }
}
