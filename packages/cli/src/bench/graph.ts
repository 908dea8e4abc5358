import { randomUUID } from "node:crypto";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createServiceClient } from "@promptcraft/client";
import { createKnex, pg } from "@promptcraft/db";
import { identityService, issueAccessToken, type KeyRing } from "@promptcraft/identity";
import { loadConfig, startService, type RunningService } from "@promptcraft/platform";
import { GraphService } from "@promptcraft/proto/promptcraft/graph/v1/graph_service_pb";
import { Direction, RelationshipType } from "@promptcraft/proto/promptcraft/graph/v1/resources_pb";
import { createTenant, createUser, provisionTestDatabase } from "@promptcraft/testing";
import { migrateAll } from "../database.js";
import { median } from "./h2load.js";
import { startServerProcess, stop, type Server } from "./transport.js";

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

function line(label: string, ms: number[], goal?: number): string {
  const p95 = percentile(ms, 0.95);
  const verdict = goal === undefined ? "" : ` (goal p95 ≤ ${goal} ms) ${p95 <= goal ? "✓" : "✗ above goal"}`;
  return `  ${label.padEnd(52)}: median ${median(ms).toFixed(2)} ms, p95 ${p95.toFixed(2)} ms${verdict}`;
}

/**
 * `npm run bench graph [-- --scale F]`: one tenant with 100k entities and ~1M relationships (× F),
 * generated in SQL: 10 % contexts in 5 layers (each depending on 2 of the layer below: diamonds), 1 %
 * of them libraries the others are part of, 90 % templates each depending on 10 contexts, and one
 * shared context with 1,000 direct dependents. Then, over gRPC to graph in its own process:
 * AnalyzeImpact (depth 10) from the shared context beside the same closure by a plain recursive CTE
 * through `pg`; GetEntityGraph with max_nodes 500; CreateRelationship with the cycle check;
 * ResolveDependencies now and as of a past time; and the concurrent cycle test. DATABASE_URL, else
 * the embedded engine; BENCH_GRAPH_CALLS (default 50) overrides the calls per measurement.
 */
export async function benchGraph(args: string[]): Promise<number> {
  const scaleAt = args.indexOf("--scale");
  const scale = scaleAt >= 0 ? Number(args[scaleAt + 1]) : 1;
  const calls = Number(process.env.BENCH_GRAPH_CALLS ?? 50);
  const total = Math.round(100_000 * scale);
  const contexts = Math.round(total / 10);
  const layer = Math.floor(contexts / 5);
  const database = await provisionTestDatabase(process.env, (l) => console.log(l));
  let identity: RunningService | undefined;
  let graph: Server | undefined;
  const db = createKnex({ url: database.url, poolMax: 2, applicationName: "promptcraft-bench-graph" });
  // One connection that never idles out: the generated ids live in a temp table of that session.
  const pool = new pg.Pool({ connectionString: database.url, max: 1, idleTimeoutMillis: 0 });
  try {
    await migrateAll(database.url);
    const base = { DATABASE_URL: database.url, GRPC_PORT: "0", CONNECT_PORT: "0", LOG_LEVEL: "silent" };
    identity = await startService(identityService, loadConfig(identityService.config, base));
    graph = await startServerProcess("./graph-server.js", [], { DATABASE_URL: database.url, IDENTITY_URL: `http://127.0.0.1:${identity.grpcPort}`, LOG_LEVEL: "silent" });
    const tenantId = await createTenant(db);
    const userId = await createUser(db, tenantId, "editor");
    const { token } = await issueAccessToken(identity.state as KeyRing, { issuer: "promptcraft-identity", ttlS: 3600 }, { tenantId, userId, role: "editor", sessionId: randomUUID() });
    const client = createServiceClient(GraphService, `http://127.0.0.1:${graph.ports[0]}`, { protocol: "grpc", token });

    const t0 = performance.now();
    // Entities 1..contexts are contexts (layer = (i - 1) / layer), the first 1 % of them libraries; the rest templates.
    await pool.query(`create temp table node as select g as i, gen_random_uuid() as id from generate_series(1, ${total}) g`);
    await pool.query("create unique index on node (i)");
    await pool.query(
      `insert into entity (tenant_id, id, entity_type, owner_id, name)
       select $1, n.id, case when n.i <= $2 / 100 then 'library' when n.i <= $2 then 'context' else 'template' end, $3, 'n-' || n.i from node n`,
      [tenantId, contexts, userId],
    );
    await pool.query(
      `insert into entity_version (tenant_id, entity_id, version, title, visibility, author_id, content_hash, valid_from)
       select $1, n.id, 1, 'node ' || n.i, 'tenant', $2, md5(n.i::text) || md5(n.i::text), now() - interval '1 day' from node n`,
      [tenantId, userId],
    );
    // (The shared context is the last one: no layer edge reaches it, so its dependents are the 1,000 templates.)
    // Edges: template -> 10 contexts; context (layers 0..3) -> 2 contexts of the next layer; contexts -> a library (part_of);
    // template i <= 1000 -> the shared context (the last context).
    const shared = contexts;
    const edges = `
      select t.id as s, c.id as d, 'depends_on' as k from node t
        cross join generate_series(1, 10) k join node c on c.i = 1 + (t.i * 31 + k * 997) % ($1 - 1)
        where t.i > $1
      union all
      select a.id, b.id, 'depends_on' from node a cross join generate_series(0, 1) k
        join node b on b.i = ((a.i - 1) / $2 + 1) * $2 + 1 + ((a.i * 7 + k * 13) % ($2 - 1))
        where a.i <= $1 and (a.i - 1) / $2 < 4 and a.i > $1 / 100
      union all
      select a.id, l.id, 'part_of' from node a join node l on l.i = 1 + a.i % greatest($1 / 100, 1)
        where a.i > $1 / 100 and a.i <= $1 and a.i <> $3
      union all
      select t.id, c.id, 'depends_on' from node t join node c on c.i = $3 where t.i > $1 and t.i <= $1 + 1000`;
    await pool.query(
      `insert into relationship (tenant_id, source_id, target_id, relationship_type, created_at)
       select distinct on (s, d, k) $4::uuid, s, d, k, now() - interval '1 hour' from (${edges}) e where s <> d`,
      [contexts, layer, shared, tenantId],
    );
    await pool.query(
      `insert into relationship_revision (tenant_id, relationship_id, revision, source_id, target_id, relationship_type, strength, valid_from)
       select tenant_id, id, 1, source_id, target_id, relationship_type, strength, created_at from relationship where tenant_id = $1`,
      [tenantId],
    );
    await pool.query("analyze entity; analyze entity_version; analyze relationship; analyze relationship_revision");
    const { rows: counted } = await pool.query<{ n: string }>("select count(*)::text as n from relationship where tenant_id = $1", [tenantId]);
    const ids = (await pool.query<{ i: number; id: string }>(`select i, id from node where i in ($1, $2, $3)`, [shared, contexts + 1, 1 + layer])).rows;
    const idOf = (i: number) => ids.find((r) => r.i === i)!.id;
    console.log(
      `graph benchmark (${database.kind} database): ${total.toLocaleString("en")} entities, ${Number(counted[0]!.n).toLocaleString("en")} relationships (generated in ${((performance.now() - t0) / 1000).toFixed(1)} s)`,
    );

    // AnalyzeImpact from the shared context, beside a directed CTE that expands node ids once.
    const impact = () => client.analyzeImpact({ entityId: idOf(shared), maxDepth: 10, maxResults: 5000 });
    const plainSql = `with recursive up (id, depth) as (
        select $2::uuid, 0
        union
        select r.source_id, u.depth + 1 from up u
        join relationship r on r.tenant_id = $1 and r.target_id = u.id and r.relationship_type in ('depends_on', 'part_of')
        where u.depth < 10)
      select id, min(depth) from up where depth > 0 group by id`;
    const plain = async () => (await pool.query<{ id: string }>(plainSql, [tenantId, idOf(shared)])).rows;
    const answer = await impact();
    const plainRows = await plain();
    console.log(`  AnalyzeImpact closure: ${answer.impacted.length} dependents (plain CTE: ${plainRows.length}; agree: ${answer.impacted.length === plainRows.length ? "yes" : "NO"})`);
    const impactMs = await timed(calls, impact);
    const plainMs = await timed(calls, plain);
    console.log(line("AnalyzeImpact depth 10, ~1,000 dependents (gRPC)", impactMs, 50));
    console.log(line("the same closure, recursive CTE through pg", plainMs));
    console.log(`  ${"ratio gRPC / plain CTE (medians)".padEnd(52)}: ${(median(impactMs) / median(plainMs)).toFixed(1)}×`);

    const graphOf = () => client.getEntityGraph({ entityId: idOf(1 + layer), depth: 10, direction: Direction.BOTH, maxNodes: 500 });
    const g = await graphOf();
    console.log(`  GetEntityGraph: ${g.nodes.length} nodes, ${g.edges.length} edges, truncated ${g.truncated}`);
    console.log(line("GetEntityGraph max_nodes 500 (gRPC)", await timed(calls, graphOf), 50));

    // CreateRelationship with the cycle check: template -> a context, each time a new template.
    let next = contexts + 2000;
    const createMs = await timed(calls, async () => {
      const { rows } = await pool.query<{ id: string }>("select id from node where i = $1", [next++]);
      await client.createRelationship({ relationship: { sourceEntityId: rows[0]!.id, targetEntityId: idOf(1 + layer), type: RelationshipType.PART_OF } });
    });
    console.log(line("CreateRelationship with the cycle check (gRPC)", createMs, 20));

    const template = idOf(contexts + 1);
    const past = new Date(Date.now() - 30 * 60_000);
    const resolveNow = () => client.resolveDependencies({ entityId: template, types: [RelationshipType.DEPENDS_ON, RelationshipType.PART_OF] });
    const resolvePast = () => client.resolveDependencies({ entityId: template, types: [RelationshipType.DEPENDS_ON, RelationshipType.PART_OF], asOfTime: timestampFromDate(past) });
    console.log(`  ResolveDependencies: ${(await resolveNow()).dependencies.length} entries now, ${(await resolvePast()).dependencies.length} as of 30 min ago`);
    const nowMs = await timed(calls, resolveNow);
    const pastMs = await timed(calls, resolvePast);
    console.log(line("ResolveDependencies now (gRPC)", nowMs));
    console.log(line("ResolveDependencies as of a past time (gRPC)", pastMs));
    console.log(`  ${"ratio as-of / now (medians; goal ≤ 2×)".padEnd(52)}: ${(median(pastMs) / median(nowMs)).toFixed(2)}×`);

    // Concurrent cycle test: 8 edges, any two of which close a cycle together.
    const n = 8;
    const fresh = (await pool.query<{ id: string }>("select id from node where i > $1 order by i desc limit $2", [contexts, 2 * n])).rows.map((r) => r.id);
    const sources = fresh.slice(0, n);
    const targets = fresh.slice(n);
    await pool.query(
      `insert into relationship (tenant_id, source_id, target_id, relationship_type)
       select $1, t.id, s.id, 'depends_on' from unnest($2::uuid[]) with ordinality t(id, i) cross join unnest($3::uuid[]) with ordinality s(id, j) where i <> j`,
      [tenantId, targets, sources],
    );
    const outcomes = await Promise.allSettled(sources.map((s, i) => client.createRelationship({ relationship: { sourceEntityId: s, targetEntityId: targets[i], type: RelationshipType.DEPENDS_ON } })));
    const won = outcomes.filter((o) => o.status === "fulfilled").length;
    console.log(`  concurrent cycle test: ${n} concurrent creates that pairwise close a cycle → ${won} created (expected 1) ${won === 1 ? "✓" : "✗"}`);
    return answer.impacted.length === plainRows.length && won === 1 ? 0 : 1;
  } finally {
    await pool.end();
    await db.destroy();
    if (graph) await stop(graph);
    await identity?.close();
    await database.stop();
  }
}
