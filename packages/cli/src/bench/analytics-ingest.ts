import { randomUUID } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createKnex, pg } from "@promptcraft/db";
import {
  AnalyticsService,
  StreamUsageEventsRequestSchema,
  StreamUsageEventsResponseSchema,
  type StreamUsageEventsRequest,
  type StreamUsageEventsResponse,
} from "@promptcraft/proto/promptcraft/analytics/v1/analytics_service_pb";
import { UsageKind } from "@promptcraft/proto/promptcraft/analytics/v1/resources_pb";
import { createTenant, provisionTestDatabase } from "@promptcraft/testing";
import { migrateAll } from "../database.js";
import { median } from "./h2load.js";
import { startServerProcess, stop } from "./transport.js";

const SERVICE_TOKEN = randomUUID() + randomUUID();
const MODELS = ["gpt-4o-mini", "gpt-4o", "claude-sonnet", "llama-3-70b"];

/** One producer's events: `messages` batches of `batch` events of `tenantId`, times spread over the last hour. */
function producerEvents(tenantId: string, messages: number, batch: number): StreamUsageEventsRequest[] {
  const now = Date.now();
  return Array.from({ length: messages }, () =>
    create(StreamUsageEventsRequestSchema, {
      events: Array.from({ length: batch }, (_, i) => ({
        id: randomUUID(),
        tenantId,
        kind: UsageKind.LLM_CALL,
        entityId: randomUUID(),
        entityVersion: 1 + (i % 7),
        label: "production",
        model: MODELS[i % MODELS.length]!,
        inputTokens: 100 + (i % 900),
        outputTokens: 50 + (i % 400),
        costMicros: BigInt(1000 + i),
        latency: { seconds: 0n, nanos: (200 + (i % 800)) * 1_000_000 },
        occurTime: timestampFromDate(new Date(now - Math.floor(Math.random() * 3_600_000))),
      })),
    }),
  );
}

/** The raw path: the same rows as one `INSERT … SELECT FROM unnest(…)` per batch through `pg`, no service, no dedupe. */
async function rawInsert(pool: pg.Pool, tenantId: string, batch: StreamUsageEventsRequest): Promise<void> {
  const e = batch.events;
  await pool.query(
    `insert into usage_event (tenant_id, id, occurred_at, kind, entity_id, entity_version, label, model, tokens_in, tokens_out, cost_usd, latency_ms)
     select $1::uuid, t.* from unnest($2::uuid[], $3::timestamptz[], $4::text[], $5::uuid[], $6::int[], $7::text[], $8::text[], $9::int[], $10::int[], $11::numeric[], $12::int[])
       as t(id, occurred_at, kind, entity_id, entity_version, label, model, tokens_in, tokens_out, cost_usd, latency_ms)`,
    [
      tenantId,
      e.map((x) => x.id),
      e.map((x) => new Date(Number(x.occurTime!.seconds) * 1000 + x.occurTime!.nanos / 1e6)),
      e.map(() => "llm_call"),
      e.map((x) => x.entityId),
      e.map((x) => x.entityVersion),
      e.map((x) => x.label),
      e.map((x) => x.model),
      e.map((x) => x.inputTokens),
      e.map((x) => x.outputTokens),
      e.map((x) => (Number(x.costMicros) / 1e6).toFixed(6)),
      e.map((x) => Math.round(x.latency!.nanos / 1e6)),
    ],
  );
}

/**
 * `npm run bench analytics -- ingest`: streamed usage ingest — `streams` concurrent
 * StreamUsageEvents streams over gRPC (grpc-js, messages encoded before the clock starts: producers
 * are other processes; the service credential, as the services' reporters send) to analytics in
 * its own process,
 * `events` in all in messages of `batch` — against the same rows written raw through `pg`
 * (`INSERT … SELECT FROM unnest`, one statement per batch on `streams` connections, without the
 * service's dedupe claim). Rounds alternate the order. Prints events/s per round, the medians and
 * the median of the per-round ratios (goals: ≥ 5,000 events/s, ≥ 0.5 of raw). DATABASE_URL, else
 * the embedded engine. BENCH_ROUNDS, BENCH_EVENTS, BENCH_STREAMS, BENCH_BATCH override.
 */
export async function benchAnalyticsIngest(args: string[]): Promise<number> {
  const rounds = Number(args[0] ?? process.env.BENCH_ROUNDS ?? 3);
  const total = Number(process.env.BENCH_EVENTS ?? 200_000);
  const streams = Number(process.env.BENCH_STREAMS ?? 4);
  const batch = Number(process.env.BENCH_BATCH ?? 1000);
  const perStream = Math.ceil(total / streams / batch);
  const db = await provisionTestDatabase(process.env, (line) => console.log(line));
  try {
    await migrateAll(db.url);
    const analytics = await startServerProcess("./analytics-server.js", [], { DATABASE_URL: db.url, LOG_LEVEL: "silent", DB_POOL_MAX: String(streams + 2), SERVICE_TOKEN });
    const pool = new pg.Pool({ connectionString: db.url, max: streams });
    const knex = createKnex({ url: db.url, poolMax: 1, applicationName: "bench-analytics-ingest" });
    const client = new grpc.Client(`127.0.0.1:${analytics.ports[0]}`, grpc.credentials.createInsecure());
    try {
      const tenantId = await createTenant(knex);
      const metadata = new grpc.Metadata();
      metadata.set("authorization", `Bearer ${SERVICE_TOKEN}`);
      metadata.set("x-promptcraft-service", "bench");
      const method = `/${AnalyticsService.typeName}/${AnalyticsService.method.streamUsageEvents.name}`;
      /** One stream of pre-encoded messages (producers are other processes: their encoding is not the service's cost). */
      const send = (messages: Buffer[]) =>
        new Promise<StreamUsageEventsResponse>((resolve, reject) => {
          const call = client.makeClientStreamRequest(method, (b: Buffer) => b, (b: Buffer) => fromBinary(StreamUsageEventsResponseSchema, b), metadata, {}, (err, res) => (err ? reject(err) : resolve(res!)));
          void (async () => {
            for (const m of messages) if (!call.write(m)) await new Promise((r) => call.once("drain", r));
            call.end();
          })();
        });
      const viaService = async (): Promise<number> => {
        const producers = Array.from({ length: streams }, () => producerEvents(tenantId, perStream, batch).map((m) => Buffer.from(toBinary(StreamUsageEventsRequestSchema, m))));
        const started = performance.now();
        const results = await Promise.all(producers.map(send));
        const seconds = (performance.now() - started) / 1000;
        const accepted = results.reduce((n, r) => n + Number(r.acceptedCount), 0);
        if (accepted !== streams * perStream * batch) throw new Error(`accepted ${accepted} events, expected ${streams * perStream * batch}`);
        return accepted / seconds;
      };
      const viaPg = async (): Promise<number> => {
        const producers = Array.from({ length: streams }, () => producerEvents(tenantId, perStream, batch));
        const started = performance.now();
        await Promise.all(producers.map(async (messages) => {
          for (const m of messages) await rawInsert(pool, tenantId, m);
        }));
        return (streams * perStream * batch) / ((performance.now() - started) / 1000);
      };
      console.log(`analytics ingest benchmark (${db.kind} database): ${streams * perStream * batch} events per run from ${streams} concurrent StreamUsageEvents streams (gRPC, messages of ${batch}) vs the same rows through pg (INSERT … SELECT FROM unnest, ${streams} connections); ${rounds} rounds`);
      const service: number[] = [];
      const raw: number[] = [];
      const ratio: number[] = [];
      for (let round = 1; round <= rounds; round++) {
        let s: number;
        let r: number;
        if (round % 2) {
          s = await viaService();
          r = await viaPg();
        } else {
          r = await viaPg();
          s = await viaService();
        }
        service.push(s);
        raw.push(r);
        ratio.push(s / r);
        console.log(`  round ${round}: service ${s.toFixed(0)} events/s, raw pg ${r.toFixed(0)} events/s, ratio ${(s / r).toFixed(2)}`);
      }
      const ms = median(service);
      const mr = median(ratio);
      console.log(`  median streamed ingest : ${ms.toFixed(0)} events/s (goal ≥ 5,000) ${ms >= 5000 ? "✓" : "✗ below goal"}`);
      console.log(`  median raw pg          : ${median(raw).toFixed(0)} events/s`);
      console.log(`  ratio service / raw    : ${mr.toFixed(2)} (median of per-round ratios; goal ≥ 0.5) ${mr >= 0.5 ? "✓" : "✗ below goal"}`);
      return 0;
    } finally {
      await pool.end();
      await knex.destroy();
      client.close();
      await stop(analytics);
    }
  } finally {
    await db.stop();
  }
}
