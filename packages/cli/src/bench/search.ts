import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { createServiceClient } from "@promptcraft/client";
import { contentService } from "@promptcraft/content";
import { createKnex, pg } from "@promptcraft/db";
import { identityService, issueAccessToken, type KeyRing } from "@promptcraft/identity";
import { loadConfig, startService, type RunningService } from "@promptcraft/platform";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { EmbeddingJobState, EmbeddingState, SearchMode } from "@promptcraft/proto/promptcraft/search/v1/resources_pb";
import { SearchService } from "@promptcraft/proto/promptcraft/search/v1/search_service_pb";
import { hashEmbedding, LOCAL_DIMENSIONS, LOCAL_MODEL } from "@promptcraft/search";
import { createTenant, createUser, provisionTestDatabase } from "@promptcraft/testing";
import { migrateAll } from "../database.js";
import { median } from "./h2load.js";
import { startServerProcess, stop, type Server } from "./transport.js";

/** Words the generated texts are made of (prompt-library vocabulary). */
const WORDS = `prompt template context workflow library summary summarise contract legal clause customer support email reply
  ticket escalation incident postmortem runbook deploy release kubernetes database query index latency budget forecast revenue
  quarterly report marketing campaign launch product feature roadmap design review code refactor test coverage security audit
  compliance policy privacy data retention onboarding checklist enterprise sales lead pipeline churn analysis dashboard metric
  translate french german spanish tone formal friendly concise bullet outline draft blog article newsletter social post tweet
  research paper abstract citation experiment hypothesis result model training evaluation dataset label annotation classifier
  sentiment extraction entity invoice payment refund order shipping warehouse inventory supplier procurement negotiation hiring
  interview candidate feedback performance goal meeting agenda notes action item decision risk mitigation timeline milestone`
  .split(/\s+/)
  .filter(Boolean);

/** Settings of the search service a run may take from the environment. */
const TUNING = ["EMBEDDING_WORKERS", "EMBEDDING_CLAIM_BATCH", "EMBEDDING_WORKER_INTERVAL_MS", "EMBEDDING_EVENT_POLL_MS", "SEARCH_EF_SEARCH", "SEARCH_MAX_SCAN_TUPLES"] as const;

function percentile(values: number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
}
const ms = (v: number) => `${v.toFixed(2)} ms`;

/** A deterministic pseudo-random stream (queries are the same on every run). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

/**
 * `npm run bench search`: BENCH_SEARCH_ENTITIES (default 100,000) entities of one tenant with
 * generated text (title 4 words, description 20, tags: `t1` on 1 %, `t10` on 10 %), written in SQL,
 * then embedded by the local provider through ReindexEntities (reindex throughput, versions/s).
 * Then over gRPC to search (in its own process): semantic search p50 beside the exact (brute-force,
 * sequential scan) search of the same vectors through `pg`, recall@10 against it, unfiltered and
 * filtered to the 1 % and 10 % tags (full pages counted); hybrid p50/p95; and freshness: from an
 * acknowledged UpdateEntity to the new word found by full-text and by semantic search.
 * DATABASE_URL, else the embedded engine; BENCH_SEARCH_QUERIES (default 50) queries per case; the
 * search service runs with its defaults, or EMBEDDING_WORKERS, EMBEDDING_CLAIM_BATCH,
 * EMBEDDING_WORKER_INTERVAL_MS, EMBEDDING_EVENT_POLL_MS, SEARCH_EF_SEARCH, SEARCH_MAX_SCAN_TUPLES from
 * the environment when set.
 */
export async function benchSearch(): Promise<number> {
  const total = Number(process.env.BENCH_SEARCH_ENTITIES ?? 100_000);
  const queries = Number(process.env.BENCH_SEARCH_QUERIES ?? 50);
  const database = await provisionTestDatabase(process.env, (line) => console.log(line));
  const started: RunningService[] = [];
  let search: Server | undefined;
  const db = createKnex({ url: database.url, poolMax: 2, applicationName: "promptcraft-bench-search" });
  const pool = new pg.Pool({ connectionString: database.url, max: 1 });
  try {
    await migrateAll(database.url);
    const base = { DATABASE_URL: database.url, GRPC_PORT: "0", CONNECT_PORT: "0", LOG_LEVEL: "silent" };
    const identity = await startService(identityService, loadConfig(identityService.config, base));
    started.push(identity);
    const peers = { ...base, IDENTITY_URL: `http://127.0.0.1:${identity.grpcPort}` };
    const content = await startService(contentService, loadConfig(contentService.config, peers));
    started.push(content);
    // Search in its own process (the client's event loop apart); its tuning may be set for a run
    // (EMBEDDING_WORKERS=1 npm run bench search …): the process takes the environment.
    search = await startServerProcess("./search-server.js", [], peers);
    console.log(`search tuning: ${TUNING.filter((k) => process.env[k] !== undefined).map((k) => `${k}=${process.env[k]}`).join(" ") || "defaults"}`);
    const tenantId = await createTenant(db);
    const userId = await createUser(db, tenantId, "owner");
    const { token } = await issueAccessToken(identity.state as KeyRing, { issuer: "promptcraft-identity", ttlS: 3600 }, { tenantId, userId, role: "owner", sessionId: randomUUID() });
    const searchClient = createServiceClient(SearchService, `http://127.0.0.1:${search.ports[0]}`, { protocol: "grpc", token });
    const contentClient = createServiceClient(ContentService, `http://127.0.0.1:${content.grpcPort}`, { protocol: "grpc", token });

    // Entities and their first versions, in SQL (the product's constraints apply; no events: nothing queues them).
    let t0 = performance.now();
    const words = (n: string) => `(select string_agg(($3::text[])[1 + floor(random() * cardinality($3::text[]))::int], ' ') from generate_series(1, ${n} + 0 * g))`;
    await pool.query(
      `with rows as (
         select g, gen_random_uuid() as id, ${words("4")} as title, ${words("20")} as description from generate_series(1, $2::int) g
       ), entities as (
         insert into entity (tenant_id, id, entity_type, owner_id, name) select $1, id, 'template', $4, 'bench-' || g from rows
       )
       insert into entity_version (tenant_id, entity_id, version, title, description, tags, visibility, author_id, content_hash)
       select $1, id, 1, title, description,
              case when g % 100 = 0 then array['t1', 't10'] when g % 10 = 0 then array['t10'] else array[]::text[] end,
              'tenant', $4, encode(sha256(convert_to(title || description, 'UTF8')), 'hex')
       from rows`,
      [tenantId, total, WORDS, userId],
    );
    // What autovacuum does to a table after a bulk load, at once: statistics, the visibility map, and
    // the GIN indexes' pending lists merged (a query would otherwise scan them whole).
    await pool.query("vacuum analyze entity");
    await pool.query("vacuum analyze entity_version");
    console.log(`search benchmark (${database.kind} database): ${total.toLocaleString("en")} entities of one tenant generated in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    // Reindex throughput: every version embedded by the local provider through the pipeline.
    t0 = performance.now();
    const job = await searchClient.reindexEntities({});
    let state = job;
    while (state.state !== EmbeddingJobState.SUCCEEDED) {
      await sleep(200);
      state = await searchClient.getEmbeddingJob({ jobId: job.id });
    }
    const reindexS = (performance.now() - t0) / 1000;
    await pool.query("vacuum analyze embedding");
    console.log(`reindex: ${state.completedCount.toLocaleString("en")} versions in ${reindexS.toFixed(1)} s = ${(state.completedCount / reindexS).toFixed(0)} versions/s (goal ≥ 500)`);

    const random = rng(13);
    const query = () => Array.from({ length: 3 }, () => WORDS[Math.floor(random() * WORDS.length)]!).join(" ");
    /** The exact top 10 (sequential scan, no index) of the same vectors, filtered by tag; and its time. */
    const exact = async (text: string, tag: string | null) => {
      const vector = `[${hashEmbedding(text, LOCAL_DIMENSIONS).join(",")}]`;
      const client = await pool.connect();
      try {
        await client.query("begin");
        await client.query("set local enable_indexscan = off; set local enable_bitmapscan = off");
        const start = performance.now();
        const { rows } = await client.query<{ entity_id: string }>(
          `select em.entity_id from embedding em
           join entity_version cv on cv.tenant_id = em.tenant_id and cv.entity_id = em.entity_id and cv.version = em.version and cv.valid_to is null
           where em.tenant_id = $1 and em.model = $2 and em.status = 'completed' and ($4::text is null or cv.tags @> array[$4::text])
           order by em.vector::vector(384) <=> $3::vector(384), em.entity_id limit 10`,
          [tenantId, LOCAL_MODEL, vector, tag],
        );
        const elapsed = performance.now() - start;
        await client.query("commit");
        return { ids: rows.map((r) => r.entity_id), ms: elapsed };
      } finally {
        client.release();
      }
    };
    for (const [label, tag] of [["all rows", null], ["tag on 10 %", "t10"], ["tag on 1 %", "t1"]] as const) {
      // All searches first, then all exact scans: interleaved, each exact scan (the whole table
      // through shared buffers) would push the index out of memory before the next search.
      const texts = Array.from({ length: queries }, query);
      for (let i = 0; i < 5; i++) await searchClient.searchEntities({ query: query(), mode: SearchMode.SEMANTIC, pageSize: 10, tags: tag ? [tag] : [] }); // warm-up
      const times: number[] = [];
      const pages: string[][] = [];
      for (const text of texts) {
        const start = performance.now();
        const res = await searchClient.searchEntities({ query: text, mode: SearchMode.SEMANTIC, pageSize: 10, tags: tag ? [tag] : [] });
        times.push(performance.now() - start);
        pages.push(res.results.map((r) => r.entityId));
      }
      const exactTimes: number[] = [];
      let recall = 0;
      let full = 0;
      for (const [i, text] of texts.entries()) {
        const truth = await exact(text, tag);
        exactTimes.push(truth.ms);
        const found = new Set(pages[i]);
        recall += truth.ids.filter((id) => found.has(id)).length / Math.max(1, truth.ids.length);
        if (pages[i]!.length === Math.min(10, truth.ids.length)) full++;
      }
      console.log(
        `semantic, ${label}: p50 ${ms(median(times))} over gRPC (goal ≤ 10 ms) vs exact scan p50 ${ms(median(exactTimes))} through pg (ratio ${(median(times) / median(exactTimes)).toFixed(2)}); recall@10 ${(recall / queries).toFixed(3)} (goal ≥ 0.95); full pages ${full}/${queries}`,
      );
    }
    for (let i = 0; i < 5; i++) await searchClient.searchEntities({ query: query(), mode: SearchMode.HYBRID, pageSize: 10 }); // warm-up
    const hybrid: number[] = [];
    for (let i = 0; i < queries; i++) {
      const start = performance.now();
      await searchClient.searchEntities({ query: query(), mode: SearchMode.HYBRID, pageSize: 10 });
      hybrid.push(performance.now() - start);
    }
    console.log(`hybrid: p50 ${ms(median(hybrid))}, p95 ${ms(percentile(hybrid, 0.95))} (goal p95 ≤ 50 ms)`);

    // Freshness: UpdateEntity acknowledged → the new version found by full text (a word only it
    // has) and by semantic search (its own new text as the query: the nearest vector is itself).
    // A query made of words no other version has would test the index rather than the pipeline: a
    // vector with no near neighbour gets few links in the HNSW graph, and the graph search seldom
    // reaches it (docs/benchmarks.md).
    const { rows: sample } = await pool.query<{ entity_id: string; title: string }>(
      "select entity_id, title from entity_version where tenant_id = $1 and valid_to is null and tags = '{}' limit 10",
      [tenantId],
    );
    const textLag: number[] = [];
    const semanticLag: number[] = [];
    const misses: string[] = [];
    for (const { entity_id: entityId, title } of sample) {
      const word = `fresh${randomUUID().replaceAll("-", "").slice(0, 12)}`;
      const description = `${Array.from({ length: 20 }, () => WORDS[Math.floor(random() * WORDS.length)]!).join(" ")} ${word}`;
      await contentClient.updateEntity({ entity: { id: entityId, description }, updateMask: { paths: ["description"] } });
      const acked = performance.now();
      let textAt: number | undefined;
      let semanticAt: number | undefined;
      while (textAt === undefined || semanticAt === undefined) {
        if (performance.now() - acked > 30_000) break;
        if (textAt === undefined) {
          const r = await searchClient.searchEntities({ query: word, mode: SearchMode.FULL_TEXT, pageSize: 1 });
          if (r.results[0]?.entityId === entityId) textAt = performance.now() - acked;
        }
        if (semanticAt === undefined) {
          const r = await searchClient.searchEntities({ query: `${title}\n${description}`, mode: SearchMode.SEMANTIC, pageSize: 1 });
          if (r.results[0]?.entityId === entityId && r.results[0].version === 2) semanticAt = performance.now() - acked;
        }
        if (textAt === undefined || semanticAt === undefined) await sleep(10);
      }
      if (textAt !== undefined) textLag.push(textAt);
      if (semanticAt !== undefined) semanticLag.push(semanticAt);
      else {
        const status = await searchClient.getEmbeddingStatus({ entityId });
        misses.push(`${entityId} v${status.version}: ${status.embeddings.map((e) => `${e.model} ${EmbeddingState[e.state]}`).join(", ") || "no embedding"}`);
      }
    }
    console.log(
      `freshness after UpdateEntity: full text p50 ${ms(median(textLag))} (first read; goal immediately), semantic p50 ${ms(median(semanticLag))}, p95 ${ms(percentile(semanticLag, 0.95))} (goal p95 ≤ 5000 ms)${misses.length ? `; ${misses.length}/${sample.length} not found within 30 s` : ""}`,
    );
    for (const miss of misses) console.log(`  not found: ${miss}`);
    return 0;
  } finally {
    if (search) await stop(search);
    for (const s of started.reverse()) await s.close();
    await pool.end();
    await db.destroy();
    await database.stop();
  }
}
