import { afterAll, beforeAll, describe, test } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { analyticsService } from "@promptcraft/analytics";
import { addVersion, createEntity } from "@promptcraft/content/fixtures";
import { loadConfig, startService } from "@promptcraft/platform";
import { AnalyticsService } from "@promptcraft/proto/promptcraft/analytics/v1/analytics_service_pb";
import { UsageKind } from "@promptcraft/proto/promptcraft/analytics/v1/resources_pb";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { EntityType } from "@promptcraft/proto/promptcraft/content/v1/resources_pb";
import { StatsHarness, usageEvent } from "./analytics-e2e-helpers.js";
import { testServiceEnv } from "./identity-e2e-helpers.js";
import { badFields, failure, ok, PROTOCOLS, unaryCall } from "./rpc-outcomes.js";

/*
 * Entity statistics and label-move comparison end to end (issue 11, point 3): identity, content and
 * analytics on the real network; analytics asks content (CONTENT_URL) with the caller's credentials.
 * The rollup refresher runs every 100 ms, so answers mix rollups and the not-yet-rolled tail; each
 * test also reads right after ingest, before any refresh could have run.
 */

const h = new StatsHarness();
const M = AnalyticsService.method;
const at = (ms: number) => timestampFromDate(new Date(ms));
const durMs = (d: { seconds: bigint; nanos: number } | undefined) => (d === undefined ? undefined : Number(d.seconds) * 1000 + d.nanos / 1e6);
const ms = (n: number) => ({ seconds: BigInt(Math.floor(n / 1000)), nanos: (n % 1000) * 1e6 });

beforeAll(async () => {
  await h.start({ USAGE_ROLLUP_INTERVAL_MS: "100" });
});
afterAll(async () => {
  await h.close();
});

/** A template with `versions` versions, owned by `ownerId`. */
async function template(tenantId: string, ownerId: string, versions: number, title = "Support reply"): Promise<string> {
  const { id } = await createEntity(h.db, tenantId, ownerId, { title, entityType: "template" });
  for (let v = 2; v <= versions; v++) await addVersion(h.db, tenantId, id, ownerId, { title, description: `v${v}` });
  return id;
}

describe("analytics entity statistics", () => {
  for (const protocol of PROTOCOLS) {
    describe(protocol, () => {
      test("GetEntityStats: totals and per-version split of events just ingested, before and after the rollups; NOT_FOUND across tenants", async () => {
        const m = await h.member("editor");
        const entity = await template(m.tenantId, m.userId, 2);
        const t0 = Date.now() - 3 * 3_600_000;
        const events = [
          usageEvent({ entityId: entity, entityVersion: 1, kind: UsageKind.RENDER, occurTime: at(t0) }),
          usageEvent({ entityId: entity, entityVersion: 1, kind: UsageKind.VIEW, occurTime: at(t0 + 60_000) }),
          usageEvent({ entityId: entity, entityVersion: 2, kind: UsageKind.LLM_CALL, costMicros: 1000n, inputTokens: 10, outputTokens: 4, latency: ms(100), occurTime: at(t0 + 120_000) }),
          usageEvent({ entityId: entity, entityVersion: 2, kind: UsageKind.LLM_CALL, costMicros: 3000n, inputTokens: 20, outputTokens: 6, latency: ms(120), occurTime: at(t0 + 180_000) }),
        ];
        ok(await h.call(protocol, M.ingestUsageEvents, { events }, m.token));
        const s = ok(await h.call(protocol, M.getEntityStats, { entityId: entity }, m.token));
        assert.deepEqual(
          [s.entityId, s.entityType, s.title, s.versionCount, s.viewCount, s.renderCount, s.llmCallCount, s.totals?.eventCount, s.totals?.costMicros, s.totals?.inputTokens],
          [entity, EntityType.TEMPLATE, "Support reply", 2, 1n, 1n, 2n, 4n, 4000n, 30n],
        );
        assert.equal(timestampDate(s.firstUseTime!).getTime(), t0);
        assert.equal(timestampDate(s.lastUseTime!).getTime(), t0 + 180_000);
        assert.ok(s.dataFreshnessTime !== undefined);
        assert.deepEqual(
          s.versions.map((v) => [v.version, v.viewCount, v.renderCount, v.llmCallCount, v.totals?.eventCount, v.totals?.costMicros]),
          [
            [1, 1n, 1n, 0n, 2n, 0n],
            [2, 0n, 0n, 2n, 2n, 4000n],
          ],
        );
        const p50 = durMs(s.versions[1]!.totals?.p50Latency)!;
        assert.ok(p50 >= 100 && p50 < 150, `p50 ${p50}`);
        assert.equal(timestampDate(s.versions[1]!.firstUseTime!).getTime(), t0 + 120_000);

        // One more, counted at once; and the same figures once everything is rolled up.
        ok(await h.call(protocol, M.ingestUsageEvents, { events: [usageEvent({ entityId: entity, entityVersion: 2, kind: UsageKind.RENDER, occurTime: at(t0 + 240_000) })] }, m.token));
        const next = ok(await h.call(protocol, M.getEntityStats, { entityId: entity }, m.token));
        assert.deepEqual([next.renderCount, next.versions[1]!.renderCount], [2n, 1n]);
        await until(async () => (await rolled(m.tenantId)) === 5);
        const rolledUp = ok(await h.call(protocol, M.getEntityStats, { entityId: entity }, m.token));
        assert.deepEqual(rolledUp.versions, next.versions);

        // A member of the tenant who may not view the (private) entity: NOT_FOUND, as content says.
        const peer = await h.member("editor", m.tenantId);
        assert.equal(failure(await h.call(protocol, M.getEntityStats, { entityId: entity }, peer.token)).code, "NOT_FOUND");

        // An entity of another tenant, and an unknown one, are NOT_FOUND.
        const other = await h.member("admin");
        assert.equal(failure(await h.call(protocol, M.getEntityStats, { entityId: entity }, other.token)).code, "NOT_FOUND");
        assert.equal(failure(await h.call(protocol, M.getEntityStats, { entityId: randomUUID() }, m.token)).code, "NOT_FOUND");
        const bad = await h.call(protocol, M.getEntityStats, { entityId: "nope" }, m.token);
        assert.deepEqual([failure(bad).code, badFields(bad)], ["INVALID_ARGUMENT", ["entity_id"]]);
      });

      test("ListEntityStats: ordered, paged with tamper-safe tokens, titles from content, one tenant only", async () => {
        const m = await h.member("editor");
        const [a, b, c] = [await template(m.tenantId, m.userId, 1, "A"), await template(m.tenantId, m.userId, 1, "B"), await template(m.tenantId, m.userId, 1, "C")];
        const renders = (entityId: string, n: number) => Array.from({ length: n }, () => usageEvent({ entityId, entityVersion: 1, kind: UsageKind.RENDER, costMicros: 10n }));
        ok(await h.call(protocol, M.ingestUsageEvents, { events: [...renders(a, 1), ...renders(b, 3), ...renders(c, 2), usageEvent({ entityId: c, entityVersion: 1, kind: UsageKind.VIEW })] }, m.token));

        const first = ok(await h.call(protocol, M.listEntityStats, { pageSize: 2 }, m.token));
        assert.deepEqual(
          first.entityStats.map((s) => [s.entityId, s.title, s.renderCount, s.versions.length]),
          [
            [b, "B", 3n, 1],
            [c, "C", 2n, 1],
          ],
        );
        assert.ok(first.dataFreshnessTime !== undefined);
        const second = ok(await h.call(protocol, M.listEntityStats, { pageSize: 2, pageToken: first.nextPageToken }, m.token));
        assert.deepEqual(
          second.entityStats.map((s) => s.entityId),
          [a],
        );
        assert.equal(second.nextPageToken, "");
        const byViews = ok(await h.call(protocol, M.listEntityStats, { orderBy: "view_count desc", pageSize: 1 }, m.token));
        assert.equal(byViews.entityStats[0]!.entityId, c);

        // A token of another ordering, or a forged one, is INVALID_ARGUMENT on page_token.
        const reused = await h.call(protocol, M.listEntityStats, { orderBy: "view_count desc", pageToken: first.nextPageToken }, m.token);
        assert.deepEqual([failure(reused), badFields(reused)], [{ code: "INVALID_ARGUMENT", reason: "PAGE_TOKEN_INVALID" }, ["page_token"]]);
        const forged = await h.call(protocol, M.listEntityStats, { pageToken: "eyJrIjp7fX0" }, m.token);
        assert.deepEqual(badFields(forged), ["page_token"]);
        const badOrder = await h.call(protocol, M.listEntityStats, { orderBy: "title" }, m.token);
        assert.deepEqual([failure(badOrder).code, badFields(badOrder)], ["INVALID_ARGUMENT", ["order_by"]]);

        // Types and favorites come from the read model, as of its refresh time.
        ok(await h.contentCall(protocol, ContentService.method.addFavorite, { entityId: a }, m.token));
        await h.db.raw("select view_name from refresh_read_model('entity_stats')");
        const favorites = ok(await h.call(protocol, M.listEntityStats, { orderBy: "favorite_count desc", types: [EntityType.TEMPLATE], pageSize: 1 }, m.token));
        assert.deepEqual(
          favorites.entityStats.map((s) => [s.entityId, s.favoriteCount, s.entityType]),
          [[a, 1n, EntityType.TEMPLATE]],
        );
        assert.ok(favorites.refreshTime !== undefined && timestampDate(favorites.refreshTime).getTime() <= Date.now());
        assert.deepEqual(ok(await h.call(protocol, M.listEntityStats, { types: [EntityType.CONTEXT] }, m.token)).entityStats, []);

        // Another member sees the tenant's statistics (the contract) but no title of entities private to others.
        const peer = await h.member("editor", m.tenantId);
        assert.deepEqual(
          ok(await h.call(protocol, M.listEntityStats, {}, peer.token)).entityStats.map((s) => [s.entityId, s.title, s.renderCount]),
          [
            [b, "", 3n],
            [c, "", 2n],
            [a, "", 1n],
          ],
        );

        const other = await h.member("editor");
        assert.deepEqual(ok(await h.call(protocol, M.listEntityStats, {}, other.token)).entityStats, []);
      });

      test("CompareLabelMove: production moved from v7 to v8 raised the median cost 18 %", async () => {
        const m = await h.member("admin");
        const entity = await template(m.tenantId, m.userId, 8);
        ok(await h.contentCall(protocol, ContentService.method.setLabel, { entityId: entity, label: "production", version: 7 }, m.token));
        ok(await h.contentCall(protocol, ContentService.method.setLabel, { entityId: entity, label: "production", version: 8 }, m.token));
        const history = ok(await h.contentCall(protocol, ContentService.method.listLabelHistory, { entityId: entity, label: "production" }, m.token));
        const moveAt = timestampDate(history.events[0]!.eventTime!).getTime();
        const llm = (version: number, offsetMs: number, costMicros: bigint, latencyMs: number, label = "production") =>
          usageEvent({ entityId: entity, entityVersion: version, label, kind: UsageKind.LLM_CALL, costMicros, latency: ms(latencyMs), inputTokens: 100, outputTokens: 10, occurTime: at(moveAt + offsetMs) });
        ok(
          await h.call(
            protocol,
            M.ingestUsageEvents,
            {
              events: [
                llm(7, -3 * 60_000, 1000n, 100),
                llm(7, -2 * 60_000, 2000n, 200),
                llm(7, -60_000, 9000n, 300),
                // Another label, and a render: not LLM calls of production.
                llm(7, -30_000, 99_000n, 900, "staging"),
                usageEvent({ entityId: entity, entityVersion: 7, label: "production", kind: UsageKind.RENDER, occurTime: at(moveAt - 10_000) }),
                llm(8, 1, 2000n, 150),
                llm(8, 2, 2360n, 250),
                llm(8, 3, 3000n, 350),
              ],
            },
            m.token,
          ),
        );
        const c = ok(await h.call(protocol, M.compareLabelMove, { entityId: entity, label: "production", kinds: [UsageKind.LLM_CALL], window: { seconds: 3600n } }, m.token));
        assert.deepEqual([c.fromVersion, c.toVersion, c.actorId, timestampDate(c.moveTime!).getTime()], [7, 8, m.userId, moveAt]);
        assert.deepEqual(
          [c.before?.version, c.before?.totals?.eventCount, c.before?.totals?.costMicros, c.before?.medianCostMicros, c.before?.meanCostMicros],
          [7, 3n, 12_000n, 2000, 4000],
        );
        assert.deepEqual([c.after?.version, c.after?.totals?.eventCount, c.after?.medianCostMicros], [8, 3n, 2360]);
        assert.equal(durMs(c.before?.totals?.p50Latency), 200);
        assert.equal(durMs(c.after?.totals?.p50Latency), 250);
        assert.ok(Math.abs(c.change!.medianCost! - 0.18) < 1e-9, `median cost change ${c.change?.medianCost}`);
        assert.ok(Math.abs(c.change!.p50Latency! - 0.25) < 1e-9);
        assert.equal(timestampDate(c.before!.startTime!).getTime(), moveAt - 3_600_000);
        assert.equal(c.nextChangeTime, undefined);

        // Without the kind filter the render counts too (its cost is 0).
        const all = ok(await h.call(protocol, M.compareLabelMove, { entityId: entity, label: "production", window: { seconds: 3600n } }, m.token));
        assert.equal(all.before?.totals?.eventCount, 4n);

        // Moved back: the latest move is now 8 → 7, and the 7 → 8 one (by move_time) ends at it.
        ok(await h.contentCall(protocol, ContentService.method.setLabel, { entityId: entity, label: "production", version: 7 }, m.token));
        const back = ok(await h.contentCall(protocol, ContentService.method.listLabelHistory, { entityId: entity, label: "production", pageSize: 1 }, m.token));
        const backAt = timestampDate(back.events[0]!.eventTime!).getTime();
        const latest = ok(await h.call(protocol, M.compareLabelMove, { entityId: entity, label: "production", window: { seconds: 3600n } }, m.token));
        assert.deepEqual([latest.fromVersion, latest.toVersion, timestampDate(latest.moveTime!).getTime()], [8, 7, backAt]);
        const bounded = ok(await h.call(protocol, M.compareLabelMove, { entityId: entity, label: "production", moveTime: at(moveAt), kinds: [UsageKind.LLM_CALL], window: { seconds: 3600n } }, m.token));
        assert.deepEqual([bounded.fromVersion, bounded.toVersion, bounded.after?.totals?.eventCount], [7, 8, 3n]);
        assert.equal(timestampDate(bounded.nextChangeTime!).getTime(), backAt);
        assert.equal(timestampDate(bounded.after!.endTime!).getTime(), backAt);

        // The label `staging` never moved; a move before the first one does not exist.
        assert.equal(failure(await h.call(protocol, M.compareLabelMove, { entityId: entity, label: "staging" }, m.token)).code, "NOT_FOUND");
        assert.equal(failure(await h.call(protocol, M.compareLabelMove, { entityId: entity, label: "production", moveTime: at(moveAt - 3_600_000) }, m.token)).code, "NOT_FOUND");
        // Another tenant cannot see the entity.
        const other = await h.member("admin");
        assert.equal(failure(await h.call(protocol, M.compareLabelMove, { entityId: entity, label: "production" }, other.token)).code, "NOT_FOUND");
        const badWindow = await h.call(protocol, M.compareLabelMove, { entityId: entity, label: "production", window: { seconds: 1n } }, m.token);
        assert.deepEqual([failure(badWindow).code, badFields(badWindow)], ["INVALID_ARGUMENT", ["window"]]);
        const badLabel = await h.call(protocol, M.compareLabelMove, { entityId: entity, label: "Prod!" }, m.token);
        assert.deepEqual(badFields(badLabel), ["label"]);
        const future = await h.call(protocol, M.compareLabelMove, { entityId: entity, label: "production", moveTime: at(Date.now() + 3_600_000) }, m.token);
        assert.deepEqual([failure(future).code, badFields(future)], ["INVALID_ARGUMENT", ["move_time"]]);
      });
    });
  }

  test("content unreachable: GetEntityStats and CompareLabelMove are UNAVAILABLE naming content; ListEntityStats answers without titles", async () => {
    const lonely = await startService(
      analyticsService,
      loadConfig(analyticsService.config, { ...testServiceEnv(), IDENTITY_URL: `http://127.0.0.1:${h.identity.grpcPort}`, CONTENT_URL: "http://127.0.0.1:9" }),
    );
    try {
      const m = await h.member("editor");
      const entity = await template(m.tenantId, m.userId, 1, "Titled");
      ok(await h.call("grpc", M.ingestUsageEvents, { events: [usageEvent({ entityId: entity, entityVersion: 1 })] }, m.token));
      const get = await unaryCall(AnalyticsService, lonely, "grpc", M.getEntityStats, { entityId: entity }, { authorization: `Bearer ${m.token}` });
      assert.deepEqual(failure(get), { code: "UNAVAILABLE", reason: "DEPENDENCY_UNAVAILABLE" });
      assert.equal(get.ok ? undefined : get.metadata.dependency, "content");
      const compare = await unaryCall(AnalyticsService, lonely, "connect", M.compareLabelMove, { entityId: entity, label: "production" }, { authorization: `Bearer ${m.token}` });
      assert.equal(failure(compare).code, "UNAVAILABLE");
      const list = ok(await unaryCall(AnalyticsService, lonely, "grpc", M.listEntityStats, {}, { authorization: `Bearer ${m.token}` }));
      assert.deepEqual(
        list.entityStats.map((s) => [s.entityId, s.title, s.renderCount]),
        [[entity, "", 1n]],
      );
    } finally {
      await lonely.close();
    }
  });
});

async function rolled(tenantId: string): Promise<number> {
  const { rows } = await h.db.raw<{ rows: { n: number }[] }>("select coalesce(sum(event_count), 0)::int as n from usage_rollup where tenant_id = ?", [tenantId]);
  return rows[0]!.n;
}

async function until(check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 400 && !(await check()); i++) await new Promise((r) => setTimeout(r, 25));
}
