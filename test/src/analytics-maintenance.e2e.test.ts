import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { analyticsService, PARTITION_MAINTENANCE_LOCK_KEY, READ_MODEL_LOCK_KEY } from "@promptcraft/analytics";
import { loadConfig, startService, type RunningService } from "@promptcraft/platform";
import { AnalyticsService } from "@promptcraft/proto/promptcraft/analytics/v1/analytics_service_pb";
import { PartitionMaintenanceEngine, ReadModelState, RetentionAction } from "@promptcraft/proto/promptcraft/analytics/v1/resources_pb";
import { failure, ok, PROTOCOLS, type Protocol } from "./content-e2e-helpers.js";
import { ADMIN_TOKEN, IdentityHarness, testServiceEnv } from "./identity-e2e-helpers.js";
import { unaryCall } from "./rpc-outcomes.js";

/**
 * AnalyticsService partition maintenance and read models over gRPC and Connect: platform admin
 * only, the scheduled round at start, a dry run that changes nothing, partitions made ahead and old
 * ones dropped, one maintainer (refresher) at a time, refresh recording freshness. Other test files' analytics services run maintenance too (at their start),
 * so a planted partition may go by their hand: the checks allow for that and replant.
 */

const h = new IdentityHarness();
let analytics: RunningService;
let startedAt: Date;
const EMBEDDED = process.env.PROMPTCRAFT_TEST_DB_KIND === "embedded";
const DAY_MS = 86_400_000;
const A = AnalyticsService.method;
const ADMIN = { authorization: `Bearer ${ADMIN_TOKEN}` };

beforeAll(async () => {
  await h.start();
  startedAt = new Date();
  analytics = await startService(
    analyticsService,
    loadConfig(analyticsService.config, { ...testServiceEnv(), IDENTITY_URL: h.url, PLATFORM_ADMIN_TOKEN: ADMIN_TOKEN }),
  );
});
afterAll(async () => {
  await analytics?.close();
  await h.close();
});

const status = (protocol: Protocol, headers: Record<string, string> = ADMIN) =>
  unaryCall(AnalyticsService, analytics, protocol, A.getPartitionMaintenanceStatus, {}, headers);
const run = (protocol: Protocol, request: MessageInitShape<typeof A.runPartitionMaintenance.input>, headers: Record<string, string> = ADMIN) =>
  unaryCall(AnalyticsService, analytics, protocol, A.runPartitionMaintenance, request, headers);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const isInProgress = (o: { ok: boolean; code?: string; reason?: string | undefined }) => !o.ok && o.code === "ABORTED" && o.reason === "REFRESH_IN_PROGRESS";

/** A run, retried while another maintainer (a scheduled round somewhere) holds the lock. */
async function runWhenFree(protocol: Protocol, dryRun: boolean) {
  for (let attempt = 0; ; attempt++) {
    const outcome = await run(protocol, { dryRun });
    if (!isInProgress(outcome) || attempt === 50) return ok(outcome);
    await sleep(100);
  }
}

/** A usage_event day partition far past the 400-day retention, made as the owner. */
async function plantOld(daysAgo: number): Promise<string> {
  const start = new Date(Math.floor((Date.now() - daysAgo * DAY_MS) / DAY_MS) * DAY_MS);
  await h.db.raw("select create_time_partitions('usage_event', ?, ?)", [start, new Date(start.getTime() + DAY_MS)]);
  // Named as this database's maintainer names partitions (pg_partman's names when it manages them).
  const { rows } = await h.db.raw<{ rows: { name: string }[] }>("select partition_child_name('usage_event', ?) as name", [start]);
  return rows[0]!.name;
}

/** The maintainer the database should have: pg_partman where the PostgreSQL server offers it. */
async function expectedEngine(): Promise<PartitionMaintenanceEngine> {
  const { rows } = await h.db.raw<{ rows: { available: boolean }[] }>("select exists (select 1 from pg_available_extensions where name = 'pg_partman') as available");
  return rows[0]!.available && !EMBEDDED ? PartitionMaintenanceEngine.PG_PARTMAN : PartitionMaintenanceEngine.BUILT_IN;
}

async function partitionNames(protocol: Protocol): Promise<Set<string>> {
  const tables = ok(await status(protocol)).tables;
  return new Set(tables.flatMap((t) => t.partitions.map((p) => p.name)));
}

describe.each(PROTOCOLS)("partition maintenance over %s", (protocol) => {
  test("platform admin only: no credentials UNAUTHENTICATED, a tenant owner or another secret PERMISSION_DENIED", async () => {
    const { users } = await h.tenantWith(["owner"]);
    assert.equal(failure(await status(protocol, {})).code, "UNAUTHENTICATED");
    assert.equal(failure(await run(protocol, { dryRun: true }, {})).code, "UNAUTHENTICATED");
    for (const headers of [{ authorization: `Bearer ${users[0]!.token}` }, { authorization: `Bearer ${ADMIN_TOKEN}-not` }]) {
      assert.deepEqual(failure(await status(protocol, headers)), { code: "PERMISSION_DENIED", reason: "PLATFORM_ADMIN_REQUIRED" });
      assert.deepEqual(failure(await run(protocol, { dryRun: false }, headers)), { code: "PERMISSION_DENIED", reason: "PLATFORM_ADMIN_REQUIRED" });
    }
  });

  test("status: both tables, their policies, partitions ahead; the scheduled round at start is recorded", async () => {
    let tables = ok(await status(protocol)).tables;
    for (let i = 0; i < 100 && !tables.every((t) => t.lastMaintenanceTime && Number(t.lastMaintenanceTime.seconds) * 1000 >= startedAt.getTime() - 1000); i++) {
      await sleep(100);
      tables = ok(await status(protocol)).tables;
    }
    const byName = Object.fromEntries(tables.map((t) => [t.table, t]));
    assert.deepEqual(Object.keys(byName).sort(), ["event", "usage_event"]);
    const usage = byName.usage_event!;
    assert.equal(usage.retentionAction, RetentionAction.DROP);
    assert.equal(usage.retention?.seconds, BigInt(400 * 86_400));
    assert.equal(usage.partitionInterval?.seconds, 86_400n);
    assert.ok(usage.futurePartitionCount >= usage.premakeCount, `${usage.futurePartitionCount} future partitions, premake ${usage.premakeCount}`);
    assert.ok(usage.lastMaintenanceTime && usage.nextMaintenanceTime, "the round at start is recorded");
    assert.equal(usage.lastError, "");
    assert.equal(byName.event!.retentionAction, RetentionAction.KEEP);
    assert.equal(byName.event!.retention, undefined);
    const today = usage.partitions.find((p) => Number(p.rangeStartTime!.seconds) * 1000 <= Date.now() && Date.now() < Number(p.rangeEndTime!.seconds) * 1000);
    assert.ok(today?.attached, "today's partition exists and is attached");
  });

  test("status and run say which maintainer works: pg_partman on a PostgreSQL that has it, else the built-in one", async () => {
    const engine = await expectedEngine();
    const answer = ok(await status(protocol));
    assert.equal(answer.engine, engine);
    assert.equal(answer.pgPartmanEnabled, engine === PartitionMaintenanceEngine.PG_PARTMAN);
    assert.equal(answer.pgPartmanVersion === "", engine === PartitionMaintenanceEngine.BUILT_IN);
    assert.deepEqual(
      answer.tables.map((t) => t.engine),
      [engine, engine],
    );
    const dry = await runWhenFree(protocol, true);
    assert.equal(dry.engine, engine);
  });

  test("a dry run reports the old partition and changes nothing; the run drops it", async () => {
    for (let attempt = 0; ; attempt++) {
      const old = await plantOld(protocol === "grpc" ? 450 : 451);
      const dry = await runWhenFree(protocol, true);
      if (!dry.droppedPartitions.includes(old)) {
        // Another service's scheduled round dropped it first: plant again.
        assert.ok(attempt < 5, `dry run never saw ${old}`);
        continue;
      }
      assert.deepEqual(dry.detachedPartitions, []);
      assert.ok((await partitionNames(protocol)).has(old), "the dry run changed nothing");
      const real = await runWhenFree(protocol, false);
      assert.ok(!(await partitionNames(protocol)).has(old), "the run dropped it");
      assert.ok(real.droppedPartitions.includes(old) || real.droppedPartitions.length === 0);
      assert.ok(real.tables.length === 2);
      return;
    }
  });

  test("two runs at once: one does the work, the other finds it done or is ABORTED REFRESH_IN_PROGRESS", async () => {
    const old = await plantOld(protocol === "grpc" ? 460 : 461);
    const outcomes = await Promise.all([run(protocol, { dryRun: false }), run(protocol, { dryRun: false })]);
    for (const o of outcomes) assert.ok(o.ok || isInProgress(o), o.ok ? "" : `${o.code} ${o.reason}`);
    const droppers = outcomes.filter((o) => o.ok && o.res.droppedPartitions.includes(old));
    assert.ok(droppers.length <= 1, "never dropped twice");
    await runWhenFree(protocol, false);
    assert.ok(!(await partitionNames(protocol)).has(old));
  });

  test("while another replica holds the maintenance lock, a run is ABORTED REFRESH_IN_PROGRESS", { skip: EMBEDDED }, async () => {
    const holder = await h.db.transaction();
    try {
      await holder.raw("select pg_advisory_xact_lock(?)", [PARTITION_MAINTENANCE_LOCK_KEY]);
      assert.deepEqual(failure(await run(protocol, { dryRun: true })), { code: "ABORTED", reason: "REFRESH_IN_PROGRESS" });
    } finally {
      await holder.rollback();
    }
  });
});

const listModels = (protocol: Protocol, headers: Record<string, string> = ADMIN) =>
  unaryCall(AnalyticsService, analytics, protocol, A.listReadModels, {}, headers);
const refreshModel = (protocol: Protocol, name: string, headers: Record<string, string> = ADMIN) =>
  unaryCall(AnalyticsService, analytics, protocol, A.refreshReadModel, { name }, headers);

describe.each(PROTOCOLS)("read models over %s", (protocol) => {
  test("platform admin only; an unknown name is INVALID_ARGUMENT naming the field", async () => {
    const { users } = await h.tenantWith(["owner"]);
    assert.equal(failure(await listModels(protocol, {})).code, "UNAUTHENTICATED");
    assert.deepEqual(failure(await refreshModel(protocol, "entity_stats", { authorization: `Bearer ${users[0]!.token}` })), {
      code: "PERMISSION_DENIED",
      reason: "PLATFORM_ADMIN_REQUIRED",
    });
    const unknown = await refreshModel(protocol, "no_such_model");
    assert.equal(failure(unknown).code, "INVALID_ARGUMENT");
    assert.deepEqual(!unknown.ok && unknown.fields, ["name"]);
  });

  test("a refresh records freshness, and the list shows it", async () => {
    const before = Date.now();
    let outcome = await refreshModel(protocol, "entity_stats");
    for (let i = 0; i < 50 && isInProgress(outcome); i++) {
      await sleep(100);
      outcome = await refreshModel(protocol, "entity_stats");
    }
    const model = ok(outcome);
    assert.equal(model.name, "entity_stats");
    assert.equal(model.state, ReadModelState.FRESH);
    assert.ok(Number(model.lastRefreshTime!.seconds) * 1000 >= before - 1000);
    assert.equal(model.refreshInterval?.seconds, 300n);
    assert.ok(model.lastRefreshDuration && model.staleness && model.nextRefreshTime);
    const listed = ok(await listModels(protocol)).readModels;
    assert.deepEqual(listed.map((m) => m.name), ["entity_stats", "tenant_usage_summary"]);
    const again = listed.find((m) => m.name === "entity_stats")!;
    assert.ok(again.lastRefreshTime!.seconds >= model.lastRefreshTime!.seconds);
  });

  test("while another replica refreshes: REFRESHING, and RefreshReadModel is ABORTED REFRESH_IN_PROGRESS", { skip: EMBEDDED }, async () => {
    const holder = await h.db.transaction();
    try {
      await holder.raw("select pg_advisory_xact_lock(?)", [READ_MODEL_LOCK_KEY]);
      assert.ok(ok(await listModels(protocol)).readModels.every((m) => m.state === ReadModelState.REFRESHING));
      assert.deepEqual(failure(await refreshModel(protocol, "tenant_usage_summary")), { code: "ABORTED", reason: "REFRESH_IN_PROGRESS" });
    } finally {
      await holder.rollback();
    }
  });
});
