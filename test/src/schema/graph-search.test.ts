import { afterAll, describe, test } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { withServiceRole, withTenant } from "@promptcraft/db";
import { addVersion, createEntity } from "@promptcraft/content/fixtures";
import { createTenant, createUser } from "@promptcraft/testing";
import { SQLSTATE, openKnex, rejectsWith, vectorLiteral } from "./support.js";

const knex = openKnex();
afterAll(() => knex.destroy());

async function tenantWithEntities(n: number, entityType: "context" | "template" = "context") {
  const tenantId = await createTenant(knex);
  const userId = await createUser(knex, tenantId, "editor");
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push((await createEntity(knex, tenantId, userId, { title: `e${i}`, entityType })).id);
  return { tenantId, userId, ids };
}

function edge(tenantId: string, source: string, target: string, type: string, strength = 1) {
  return withTenant(knex, { service: "graph", tenantId }, (trx) =>
    trx.raw(
      "insert into relationship (tenant_id, source_id, target_id, relationship_type, strength) values (?, ?, ?, ?, ?)",
      [tenantId, source, target, type, strength],
    ),
  );
}

describe("relationships", () => {
  test("strength must lie in 0..1; pin xor label; no self edge; one live edge per type", async () => {
    const { tenantId, ids } = await tenantWithEntities(2);
    const [a, b] = ids as [string, string];
    for (const bad of [1.5, -0.1, Number.NaN]) {
      await rejectsWith(edge(tenantId, a, b, "depends_on", bad), SQLSTATE.checkViolation, "relationship_strength_check");
    }
    await edge(tenantId, a, b, "suggests", 0);
    await edge(tenantId, a, b, "derived_from", 1);
    await rejectsWith(edge(tenantId, a, b, "suggests", 0.5), SQLSTATE.uniqueViolation, "relationship_edge_key");
    await rejectsWith(edge(tenantId, a, a, "depends_on"), SQLSTATE.checkViolation, "relationship_not_self_check");
    await rejectsWith(
      withTenant(knex, { service: "graph", tenantId }, (trx) =>
        trx.raw(
          "insert into relationship (tenant_id, source_id, target_id, relationship_type, target_version, target_label) values (?, ?, ?, 'depends_on', 1, 'production')",
          [tenantId, a, b],
        ),
      ),
      SQLSTATE.checkViolation,
      "relationship_pin_check",
    );
    await rejectsWith(
      withTenant(knex, { service: "graph", tenantId }, (trx) =>
        trx.raw(
          "insert into relationship (tenant_id, source_id, target_id, relationship_type, target_version) values (?, ?, ?, 'depends_on', 7)",
          [tenantId, a, b],
        ),
      ),
      SQLSTATE.foreignKeyViolation,
      "relationship_target_version_fkey",
    );
    await rejectsWith(edge(tenantId, a, b, "likes"), SQLSTATE.checkViolation, "relationship_type_check");
  });

  test("relationship_revision: ordered, non-overlapping validity per relationship; another tenant sees none", async () => {
    const { tenantId, ids } = await tenantWithEntities(2);
    const [a, b] = ids as [string, string];
    const relationshipId = randomUUID();
    const revision = (n: number, from: string, to: string | null) =>
      withTenant(knex, { service: "graph", tenantId }, (trx) =>
        trx.raw(
          `insert into relationship_revision (tenant_id, relationship_id, revision, source_id, target_id, relationship_type, strength, valid_from, valid_to)
           values (?, ?, ?, ?, ?, 'depends_on', 1, ?::timestamptz, ?::timestamptz)`,
          [tenantId, relationshipId, n, a, b, from, to],
        ),
      );
    await revision(1, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z");
    await revision(2, "2026-01-02T00:00:00Z", null);
    await rejectsWith(revision(3, "2026-01-03T00:00:00Z", null), SQLSTATE.exclusionViolation, "relationship_revision_no_overlap");
    await rejectsWith(revision(4, "2026-01-05T00:00:00Z", "2026-01-04T00:00:00Z"), SQLSTATE.checkViolation, "relationship_revision_range_check");
    const other = await createTenant(knex);
    const foreign = await withTenant(knex, { service: "graph", tenantId: other }, (trx) =>
      trx.raw<{ rows: unknown[] }>("select 1 from relationship_revision where relationship_id = ?", [relationshipId]),
    );
    assert.equal(foreign.rows.length, 0);
  });
});

describe("search_text_matches", () => {
  test("matches current versions of the scope's tenant only; nothing without a tenant; search's alone to call", async () => {
    const tenantA = await tenantWithEntities(0);
    const tenantB = await tenantWithEntities(0);
    const old = await createEntity(knex, tenantA.tenantId, tenantA.userId, { title: "quokka handbook" });
    await addVersion(knex, tenantA.tenantId, old.id, tenantA.userId, { title: "wombat handbook" });
    const mine = await createEntity(knex, tenantA.tenantId, tenantA.userId, { title: "quokka primer" });
    await createEntity(knex, tenantB.tenantId, tenantB.userId, { title: "quokka almanac" });
    const matches = (tenantId: string) =>
      withTenant(knex, { service: "search", tenantId }, (trx) =>
        trx.raw<{ rows: { entity_id: string; version: number; rank: number }[] }>("select entity_id, version, rank from search_text_matches(to_tsquery('english', 'quokka'))"),
      );
    const a = (await matches(tenantA.tenantId)).rows;
    assert.deepEqual(a.map((r) => [r.entity_id, r.version]), [[mine.id, 1]]); // not the superseded version, not tenant B's
    assert.ok(a[0]!.rank > 0 && a[0]!.rank < 1);
    assert.equal((await matches(tenantB.tenantId)).rows.length, 1);
    const none = await withServiceRole(knex, "search", (trx) => trx.raw<{ rows: unknown[] }>("select * from search_text_matches(to_tsquery('english', 'quokka'))"));
    assert.equal(none.rows.length, 0);
    await rejectsWith(
      withTenant(knex, { service: "content", tenantId: tenantA.tenantId }, (trx) => trx.raw("select * from search_text_matches(to_tsquery('english', 'quokka'))")),
      SQLSTATE.insufficientPrivilege,
    );
  });
});

describe("embeddings and search_similar_entities", () => {
  async function embed(tenantId: string, entityId: string, version: number, model: string, vector: string) {
    await withTenant(knex, { service: "search", tenantId }, (trx) =>
      trx.raw(
        `insert into embedding (tenant_id, entity_id, version, model, vector, status, content_hash, embedded_at)
         values (?, ?, ?, ?, ?::vector, 'completed', 'hash', now())`,
        [tenantId, entityId, version, model, vector],
      ),
    );
  }

  for (const dims of [384, 1536]) {
    test(`nearest current versions by cosine similarity (${dims} dimensions)`, async () => {
      const { tenantId, userId, ids } = await tenantWithEntities(4);
      const model = `test-model-${dims}`;
      for (const [i, id] of ids.entries()) await embed(tenantId, id, 1, model, vectorLiteral(dims, i + 1));
      const [first, second, third, fourth] = ids as [string, string, string, string];
      // A newer version of `second` without an embedding: its old embedding no longer counts.
      await addVersion(knex, tenantId, second, userId, { title: "e1 v2" });
      // A deleted entity is not found.
      await withTenant(knex, { service: "content", tenantId }, (trx) =>
        trx.raw("update entity set deleted_at = now() where tenant_id = ? and id = ?", [tenantId, fourth]),
      );
      // Another tenant's identical vector never shows up.
      const other = await tenantWithEntities(1);
      await embed(other.tenantId, other.ids[0] ?? "", 1, model, vectorLiteral(dims, 1));

      const found = await withTenant(knex, { service: "search", tenantId }, (trx) =>
        trx.raw<{ rows: { entity_id: string; similarity: number; title: string }[] }>(
          "select entity_id, similarity, title from search_similar_entities(?, ?::vector, 'context', 10, ?)",
          [tenantId, vectorLiteral(dims, 1, 0.5), model],
        ),
      );
      assert.deepEqual(found.rows.map((r) => r.entity_id).sort(), [first, third].sort());
      assert.equal(found.rows[0]?.entity_id, first);
      assert.ok((found.rows[0]?.similarity ?? 0) > 0.99, `similarity ${String(found.rows[0]?.similarity)}`);
      const templates = await withTenant(knex, { service: "search", tenantId }, (trx) =>
        trx.raw<{ rows: unknown[] }>("select entity_id from search_similar_entities(?, ?::vector, 'template', 10)", [tenantId, vectorLiteral(dims, 1)]),
      );
      assert.equal(templates.rows.length, 0);

      // The query expression matches the partial HNSW index of this dimension.
      const plan = await withTenant(knex, { service: "search", tenantId }, async (trx) => {
        // Tiny tables: forbid the alternatives so that the plan shows whether the index CAN serve the order.
        await trx.raw("set local enable_seqscan = off; set local enable_bitmapscan = off; set local enable_sort = off");
        const cast = `halfvec(${dims})`; // every dimension's index is half precision (search migrations)
        return trx.raw<{ rows: { "QUERY PLAN": string }[] }>(
          `explain select entity_id from embedding where dimensions = ${dims}
           order by vector::${cast} <=> ?::vector::${cast} limit 5`,
          [vectorLiteral(dims, 1)],
        );
      });
      const text = plan.rows.map((r) => r["QUERY PLAN"]).join("\n");
      assert.ok(text.includes(`Index Scan using embedding_hnsw_${dims}_idx`), text.replace(/'\[[^\]]*\]'/g, "'[…]'"));
    });
  }

  test("vector presence follows status; dimensions are derived", async () => {
    const { tenantId, ids } = await tenantWithEntities(1);
    const id = ids[0] ?? "";
    await rejectsWith(
      withTenant(knex, { service: "search", tenantId }, (trx) =>
        trx.raw("insert into embedding (tenant_id, entity_id, version, model, status, content_hash, embedded_at) values (?, ?, 1, 'm', 'completed', 'h', now())", [tenantId, id]),
      ),
      SQLSTATE.checkViolation,
      "embedding_vector_check",
    );
    const row = await withTenant(knex, { service: "search", tenantId }, (trx) =>
      trx.raw<{ rows: { dimensions: number }[] }>(
        "insert into embedding (tenant_id, entity_id, version, model, vector, status, content_hash, embedded_at) values (?, ?, 1, 'm', '[1,2,3]', 'completed', 'h', now()) returning dimensions",
        [tenantId, id],
      ),
    );
    assert.equal(row.rows[0]?.dimensions, 3);
  });

  test("claim_embedding_jobs leases due jobs across tenants to one worker", async () => {
    const { tenantId, ids } = await tenantWithEntities(1);
    const id = ids[0] ?? "";
    await withTenant(knex, { service: "search", tenantId }, (trx) =>
      trx.raw(
        "insert into embedding_job (tenant_id, entity_id, version, model) values (?, ?, 1, 'm') on conflict on constraint embedding_job_target_key do nothing",
        [tenantId, id],
      ),
    );
    const worker = `schema-test-${process.pid}`;
    const claimed = await withServiceRole(knex, "search", (trx) =>
      trx.raw<{ rows: { tenant_id: string; entity_id: string; attempts: number }[] }>(
        "select tenant_id, entity_id, attempts from claim_embedding_jobs(?, 1000)",
        [worker],
      ),
    );
    const job = await withTenant(knex, { service: "search", tenantId }, (trx) =>
      trx.raw<{ rows: { locked_by: string | null; attempts: number }[] }>(
        "select locked_by, attempts from embedding_job where tenant_id = ? and entity_id = ?",
        [tenantId, id],
      ),
    );
    // A running search service may have leased it first; either way it is leased exactly once.
    assert.ok(job.rows[0]?.locked_by, "job must be leased");
    if (job.rows[0]?.locked_by === worker) assert.ok(claimed.rows.some((r) => r.tenant_id === tenantId && r.entity_id === id));
    await rejectsWith(
      withServiceRole(knex, "content", (trx) => trx.raw("select id from claim_embedding_jobs('x')")),
      SQLSTATE.insufficientPrivilege,
    );
  });
});
