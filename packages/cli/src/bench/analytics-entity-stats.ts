import { randomUUID } from "node:crypto";
import { contentService } from "@promptcraft/content";
import { addVersion, createEntity } from "@promptcraft/content/fixtures";
import { createServiceClient } from "@promptcraft/client";
import { analyticsService } from "@promptcraft/analytics";
import { createKnex, pg } from "@promptcraft/db";
import { identityService, issueAccessToken, type KeyRing } from "@promptcraft/identity";
import { loadConfig, startService, type RunningService } from "@promptcraft/platform";
import { AnalyticsService } from "@promptcraft/proto/promptcraft/analytics/v1/analytics_service_pb";
import { UsageKind } from "@promptcraft/proto/promptcraft/analytics/v1/resources_pb";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { createTenant, createUser, provisionTestDatabase } from "@promptcraft/testing";
import { migrateAll } from "../database.js";
import { median } from "./h2load.js";

function percentile(values: number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
}

async function timed(calls: number, run: () => Promise<unknown>): Promise<number[]> {
  const ms: number[] = [];
  for (let i = 0; i < calls; i++) {
    const t = performance.now();
    await run();
    ms.push(performance.now() - t);
  }
  return ms;
}

const line = (name: string, ms: number[]) => `${name}: median ${median(ms).toFixed(1)} ms, p95 ${percentile(ms, 0.95).toFixed(1)} ms (${ms.length} calls)`;

/**
 * `npm run bench analytics -- entity-stats`: GetEntityStats, ListEntityStats, GetEntityCoUsage and
 * CompareLabelMove over gRPC for one tenant with 1M events over 30 days (10 entities × 2 versions,
 * requests of 3 events each, 99 % rolled up, 1 % in the tail), identity, content and analytics in
 * this process; beside each, the same figures from a plain GROUP BY over `usage_event` through `pg`
 * (for co-usage, the self-join over every request of the window). Prints medians, p95 and the ratios.
 * DATABASE_URL, else the embedded engine; BENCH_STATS_CALLS (default 20), BENCH_PLAIN_CALLS
 * (default 5) override.
 */
export async function benchAnalyticsEntityStats(): Promise<number> {
  const total = 1_000_000;
  const calls = Number(process.env.BENCH_STATS_CALLS ?? 20);
  const plainCalls = Number(process.env.BENCH_PLAIN_CALLS ?? 5);
  const database = await provisionTestDatabase(process.env, (l) => console.log(l));
  const services: RunningService[] = [];
  const db = createKnex({ url: database.url, poolMax: 2, applicationName: "promptcraft-bench-entity-stats" });
  const pool = new pg.Pool({ connectionString: database.url, max: 1 });
  try {
    await migrateAll(database.url);
    const base = { DATABASE_URL: database.url, GRPC_PORT: "0", CONNECT_PORT: "0", LOG_LEVEL: "silent" };
    const identity = await startService(identityService, loadConfig(identityService.config, base));
    services.push(identity);
    const identityUrl = `http://127.0.0.1:${identity.grpcPort}`;
    const content = await startService(contentService, loadConfig(contentService.config, { ...base, IDENTITY_URL: identityUrl }));
    services.push(content);
    // The bench rolls up itself (below), so that the tail is the 1 % it leaves.
    const analytics = await startService(
      analyticsService,
      loadConfig(analyticsService.config, { ...base, IDENTITY_URL: identityUrl, CONTENT_URL: `http://127.0.0.1:${content.grpcPort}`, USAGE_ROLLUP_INTERVAL_MS: "600000" }),
    );
    services.push(analytics);
    const tenantId = await createTenant(db);
    const userId = await createUser(db, tenantId, "admin");
    const { token } = await issueAccessToken(identity.state as KeyRing, { issuer: "promptcraft-identity", ttlS: 3600 }, { tenantId, userId, role: "admin", sessionId: randomUUID() });
    const client = createServiceClient(AnalyticsService, `http://127.0.0.1:${analytics.grpcPort}`, { protocol: "grpc", token });
    const contentClient = createServiceClient(ContentService, `http://127.0.0.1:${content.grpcPort}`, { protocol: "grpc", token });

    const entities: string[] = [];
    for (let i = 0; i < 10; i++) {
      const { id } = await createEntity(db, tenantId, userId, { title: `Prompt ${i}`, entityType: "template" });
      await addVersion(db, tenantId, id, userId, { title: `Prompt ${i}`, description: "v2" });
      entities.push(id);
    }
    const hot = entities[0]!;
    await contentClient.setLabel({ entityId: hot, label: "production", version: 1 });

    await pool.query("update partition_policy set premake_behind = 32 where parent_table = 'usage_event'");
    await pool.query("select run_partition_maintenance('usage_event')");
    // Version 1 before the middle of the window, version 2 after: the label moves there.
    const insert = (n: number, from: number) =>
      pool.query(
        `insert into usage_event (tenant_id, id, occurred_at, kind, user_id, entity_id, entity_version, label, model, tokens_in, tokens_out, cost_usd, latency_ms, request_id)
         select $1::uuid, gen_random_uuid(), t, case when g % 10 = 0 then 'render' else 'llm_call' end, $2::uuid,
                ($3::uuid[])[1 + g % 10], case when t < now() - interval '3 days' then 1 else 2 end, 'production',
                (array['gpt-4o-mini', 'gpt-4o'])[1 + g % 2], 100 + g % 900, 50 + g % 400, (1000 + g % 5000) / 1000000.0, 50 + (g * 7919) % 3000,
                'req-' || (g / 3)
         -- Requests of three events a second apart, at a pseudo-random time of the 30 days.
         from (select g, now() - ((g / 3) * 2654435761 % 2591000) * interval '1 second' + (g % 3) * interval '1 second' as t
               from generate_series($4::bigint, $4::bigint + $5::bigint - 1) g) x`,
        [tenantId, userId, entities, from, n],
      );
    const rolled = Math.round(total * 0.99);
    let t0 = performance.now();
    for (let from = 0; from < rolled; from += 250_000) await insert(Math.min(250_000, rolled - from), from);
    console.log(`analytics entity-stats benchmark (${database.kind} database): ${total.toLocaleString("en")} events of one tenant over 30 days, 10 entities × 2 versions (generated in ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    t0 = performance.now();
    await pool.query("select * from refresh_usage_rollup()");
    console.log(`  first rollup: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    await insert(total - rolled, rolled);
    await pool.query("analyze usage_event; analyze usage_rollup");
    await contentClient.setLabel({ entityId: hot, label: "production", version: 2 });

    // Same answer: uses per version of the hot entity.
    const plainSql = `select entity_version as version, count(*)::bigint as n, sum(cost_usd), percentile_cont(array[0.5, 0.95]) within group (order by latency_ms),
                             min(occurred_at), max(occurred_at)
                      from usage_event where tenant_id = $1 and entity_id = $2 group by 1 order by 1`;
    const viaPlain = async () => (await pool.query<{ version: number; n: string }>(plainSql, [tenantId, hot])).rows;
    const stats = await client.getEntityStats({ entityId: hot });
    const plain = await viaPlain();
    const same = JSON.stringify(stats.versions.map((v) => [v.version, String(v.totals!.eventCount)])) === JSON.stringify(plain.map((r) => [r.version, r.n]));
    console.log(`  answers agree (uses per version of one entity: ${stats.versions.map((v) => `v${v.version} ${v.totals!.eventCount}`).join(", ")}): ${same ? "yes" : "NO"}`);

    const getMs = await timed(calls, () => client.getEntityStats({ entityId: hot }));
    const plainMs = await timed(plainCalls, viaPlain);
    const listMs = await timed(calls, () => client.listEntityStats({ orderBy: "cost_micros desc", pageSize: 50 }));
    const plainListSql = `select entity_id, count(*) filter (where kind = 'render'), sum(cost_usd) as cost, max(occurred_at)
                          from usage_event where tenant_id = $1 and entity_id is not null group by 1 order by cost desc limit 50`;
    const plainListMs = await timed(plainCalls, () => pool.query(plainListSql, [tenantId]));
    const coMs = await timed(calls, () => client.getEntityCoUsage({ entityId: hot }));
    const plainCoSql = `select o.entity_id, count(distinct o.request_id) as shared
                        from usage_event u join usage_event o on o.tenant_id = u.tenant_id and o.request_id = u.request_id
                        where u.tenant_id = $1 and u.entity_id = $2 and u.occurred_at >= now() - interval '30 days'
                          and o.entity_id is not null and o.entity_id <> $2
                        group by 1 order by 2 desc, 1 limit 20`;
    const plainCoMs = await timed(plainCalls, () => pool.query(plainCoSql, [tenantId, hot]));
    const co = await client.getEntityCoUsage({ entityId: hot });
    const compareMs = await timed(calls, () => client.compareLabelMove({ entityId: hot, label: "production", kinds: [UsageKind.LLM_CALL], window: { seconds: BigInt(3 * 86_400) } }));
    console.log(`  ${line("GetEntityStats (rollups + tail, gRPC, one entity, per version)", getMs)}`);
    console.log(`  ${line("plain GROUP BY version over usage_event (pg)                 ", plainMs)}`);
    console.log(`  ratio plain / GetEntityStats (medians): ${(median(plainMs) / median(getMs)).toFixed(1)}×`);
    console.log(`  ${line("ListEntityStats (cost_micros desc, 50, gRPC)                 ", listMs)}`);
    console.log(`  ${line("plain GROUP BY entity over usage_event (pg)                  ", plainListMs)}`);
    console.log(`  ratio plain / ListEntityStats (medians): ${(median(plainListMs) / median(listMs)).toFixed(1)}×`);
    console.log(
      `  ${line("GetEntityCoUsage (30 days, latest 10,000 uses, gRPC)        ", coMs)} — ${co.requestCount} requests, ${co.entities.map((e) => e.sharedRequestCount).join(" / ")} shared`,
    );
    console.log(`  ${line("plain self-join over every request of the window (pg)        ", plainCoMs)}`);
    console.log(`  ratio plain / GetEntityCoUsage (medians): ${(median(plainCoMs) / median(coMs)).toFixed(1)}×`);
    console.log(`  ${line("CompareLabelMove (3-day windows, raw events of one entity)    ", compareMs)}`);
    return same ? 0 : 1;
  } finally {
    await pool.end();
    await db.destroy();
    for (const s of services.reverse()) await s.close();
    await database.stop();
  }
}
