import { afterAll, describe, test } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { withServiceRole, withTenant } from "@promptcraft/db";
import { createEntity } from "@promptcraft/content/fixtures";
import { createTenant, createUser } from "@promptcraft/testing";
import { SQLSTATE, firstRow, openKnex, rejectsWith } from "./support.js";

const knex = openKnex();
afterAll(() => knex.destroy());

/**
 * The partition of `event` for the UTC month `offset` months from now, as the database's maintainer
 * names it (`event_2026_12` built in; pg_partman's `event_p2026_12` / `event_p20261201`).
 */
async function monthPartition(offset: number): Promise<string> {
  const d = new Date();
  return childName("event", new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + offset, 1)));
}

/** The partition of `usage_event` for the UTC day `offset` days from now. */
async function dayPartition(offset: number): Promise<string> {
  return childName("usage_event", new Date(Math.floor(Date.now() / 86_400_000 + offset) * 86_400_000));
}

async function childName(parent: string, start: Date): Promise<string> {
  return firstRow(await knex.raw<{ rows: { name: string }[] }>("select partition_child_name(?, ?) as name", [parent, start])).name;
}

async function partitionsOf(parent: string): Promise<string[]> {
  const rows = await knex.raw<{ rows: { relname: string }[] }>(
    `select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid
     where i.inhparent = ?::regclass order by c.relname`,
    [parent],
  );
  return rows.rows.map((r) => r.relname);
}

describe("partitions", () => {
  test("event has monthly partitions from last month to 3 months ahead", async () => {
    const parts = await partitionsOf("event");
    for (let m = -1; m <= 3; m++) {
      const name = await monthPartition(m);
      assert.ok(parts.includes(name), `${name} missing`);
    }
  });

  test("usage_event has daily partitions from a week back to two weeks ahead", async () => {
    const parts = await partitionsOf("usage_event");
    for (let d = -7; d <= 14; d++) {
      const name = await dayPartition(d);
      assert.ok(parts.includes(name), `${name} missing`);
    }
  });

  test("maintenance is idempotent, limited to analytics and to tables with a policy", async () => {
    const first = await withServiceRole(knex, "analytics", (trx) =>
      trx.raw<{ rows: { action: string; partition_name: string }[] }>(
        "select action, partition_name from run_partition_maintenance()",
      ),
    );
    // Whatever a first run did (e.g. a new day began), a second run right after has nothing to do
    // unless the UTC day changes in between.
    const second = await withServiceRole(knex, "analytics", (trx) =>
      trx.raw<{ rows: unknown[] }>("select action from run_partition_maintenance()"),
    );
    assert.ok(second.rows.length <= first.rows.length + 2);
    await rejectsWith(
      withServiceRole(knex, "analytics", (trx) =>
        trx.raw("select create_time_partitions('entity', now(), now() + interval '1 day')"),
      ),
      SQLSTATE.invalidParameter,
    );
    await rejectsWith(
      withServiceRole(knex, "content", (trx) => trx.raw("select action from run_partition_maintenance()")),
      SQLSTATE.insufficientPrivilege,
    );
  });

  test("partition bounds are UTC days and months", async () => {
    const bound = await knex.raw<{ rows: { lower: string; upper: string }[] }>(
      `select (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\)'))[1]::timestamptz at time zone 'UTC' as lower,
              (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''([^'']+)''\\)'))[1]::timestamptz at time zone 'UTC' as upper
       from pg_class c where c.relname = ?`,
      [await dayPartition(1)],
    );
    const row = firstRow(bound);
    assert.equal(new Date(`${row.lower}Z`).getUTCHours(), 0);
    assert.equal(new Date(`${row.upper}Z`).getTime() - new Date(`${row.lower}Z`).getTime(), 86_400_000);
  });
});

describe("usage events", () => {
  test("retried inserts with the same client id are no-ops; outside the partitions fails loudly", async () => {
    const tenantId = await createTenant(knex);
    const id = randomUUID();
    const occurredAt = new Date().toISOString();
    for (let attempt = 0; attempt < 3; attempt++) {
      await withTenant(knex, { service: "analytics", tenantId }, (trx) =>
        trx.raw(
          `insert into usage_event (tenant_id, id, occurred_at, kind, tokens_in, tokens_out, cost_usd)
           values (?, ?, ?, 'llm_call', 10, 20, 0.001) on conflict on constraint usage_event_pkey do nothing`,
          [tenantId, id, occurredAt],
        ),
      );
    }
    const count = await withTenant(knex, { service: "analytics", tenantId }, (trx) =>
      trx.raw<{ rows: { n: string }[] }>("select count(*) as n from usage_event where tenant_id = ? and id = ?", [tenantId, id]),
    );
    assert.equal(firstRow(count).n, "1");
    await rejectsWith(
      withTenant(knex, { service: "analytics", tenantId }, (trx) =>
        trx.raw("insert into usage_event (tenant_id, id, occurred_at, kind) values (?, ?, now() + interval '5 years', 'view')", [tenantId, randomUUID()]),
      ),
      SQLSTATE.checkViolation,
    );
    await rejectsWith(
      withTenant(knex, { service: "analytics", tenantId }, (trx) =>
        trx.raw("insert into usage_event (tenant_id, id, occurred_at, kind, tokens_in) values (?, ?, now(), 'view', -1)", [tenantId, randomUUID()]),
      ),
      SQLSTATE.checkViolation,
      "usage_event_tokens_check",
    );
  });

  test("the event log tails by transaction id below the snapshot horizon", async () => {
    const tenantId = await createTenant(knex);
    await withTenant(knex, { service: "content", tenantId }, (trx) =>
      trx.raw("insert into event (tenant_id, aggregate_type, aggregate_id, event_type) values (?, 'entity', gen_random_uuid(), 'content.entity.created')", [tenantId]),
    );
    // Visible once every transaction older than the insert has ended: other test files may hold one
    // open for a while, so poll (bounded) rather than read once.
    let types: string[] = [];
    for (let i = 0; i < 300 && types.length === 0; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 50));
      const tail = await withTenant(knex, { service: "analytics", tenantId }, (trx) =>
        trx.raw<{ rows: { event_type: string }[] }>(
          `select event_type from event
           where tenant_id = ? and transaction_id < pg_snapshot_xmin(pg_current_snapshot())
           order by transaction_id, id`,
          [tenantId],
        ),
      );
      types = tail.rows.map((r) => r.event_type);
    }
    assert.deepEqual(types, ["content.entity.created"]);
  });
});

describe("read models", () => {
  test("refresh_read_model refreshes concurrently, records its time, and tenants see only their rows", async () => {
    const tenantId = await createTenant(knex, { plan: "team" });
    const userId = await createUser(knex, tenantId, "owner");
    const { id: entityId } = await createEntity(knex, tenantId, userId, { title: "used" });
    await withTenant(knex, { service: "content", tenantId }, (trx) =>
      trx.raw("insert into favorite (tenant_id, user_id, entity_id) values (?, ?, ?)", [tenantId, userId, entityId]),
    );
    await withTenant(knex, { service: "analytics", tenantId }, (trx) =>
      trx.raw(
        `insert into usage_event (tenant_id, id, occurred_at, kind, entity_id, entity_version, tokens_in, tokens_out)
         select ?, gen_random_uuid(), now() - (g * interval '1 minute'), k, ?, 1, 5, 7
         from generate_series(1, 3) g cross join (values ('view'), ('render')) as kinds (k)`,
        [tenantId, entityId],
      ),
    );
    const before = new Date(Date.now() - 1000);

    // Another refresher (a replica, a parallel test) may hold the lock: try until ours runs.
    let refreshed: { view_name: string; status: string; refreshed_at: Date | null }[] = [];
    for (let i = 0; i < 50; i++) {
      const result = await withTenant(knex, { service: "analytics", tenantId }, (trx) =>
        trx.raw<{ rows: typeof refreshed }>("select view_name, status, refreshed_at from refresh_read_model()"),
      );
      refreshed = result.rows;
      if (refreshed.every((r) => r.status === "refreshed")) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.deepEqual(refreshed.map((r) => [r.view_name, r.status]), [
      ["entity_stats", "refreshed"],
      ["tenant_usage_summary", "refreshed"],
    ]);

    await withTenant(knex, { service: "analytics", tenantId }, async (trx) => {
      const freshness = await trx.raw<{ rows: { view_name: string; last_refreshed_at: Date; refresh_count: string }[] }>(
        "select view_name, last_refreshed_at, refresh_count from read_model_refresh order by view_name",
      );
      assert.equal(freshness.rows.length, 2);
      for (const f of freshness.rows) assert.ok(f.last_refreshed_at >= before, `${f.view_name} refresh time not recorded`);

      const stats = await trx.raw<{ rows: { entity_id: string; version_count: number; favorite_count: string; views_last_30d: string; renders_last_30d: string; tokens_in_last_30d: string }[] }>(
        "select entity_id, version_count, favorite_count, views_last_30d, renders_last_30d, tokens_in_last_30d from current_tenant_entity_stats",
      );
      assert.deepEqual(stats.rows, [
        { entity_id: entityId, version_count: 1, favorite_count: "1", views_last_30d: "3", renders_last_30d: "3", tokens_in_last_30d: "30" },
      ]);
      const summary = await trx.raw<{ rows: { tenant_id: string; plan: string; entity_count: string; user_count: string; events_last_30d: string; tokens_last_30d: string }[] }>(
        "select tenant_id, plan, entity_count, user_count, events_last_30d, tokens_last_30d from current_tenant_usage_summary",
      );
      assert.deepEqual(summary.rows, [
        { tenant_id: tenantId, plan: "team", entity_count: "1", user_count: "1", events_last_30d: "6", tokens_last_30d: "72" },
      ]);
    });

    await rejectsWith(
      withTenant(knex, { service: "content", tenantId }, (trx) => trx.raw("select view_name from refresh_read_model()")),
      SQLSTATE.insufficientPrivilege,
    );
    await rejectsWith(
      withTenant(knex, { service: "analytics", tenantId }, (trx) => trx.raw("select view_name from refresh_read_model('nope')")),
      SQLSTATE.invalidParameter,
    );
  });
});
