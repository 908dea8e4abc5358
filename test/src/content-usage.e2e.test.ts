import { afterAll, beforeAll, describe, test } from "vitest";
import assert from "node:assert/strict";
import { analyticsService } from "@promptcraft/analytics";
import { loadConfig, startService, type RunningService } from "@promptcraft/platform";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { EntityType } from "@promptcraft/proto/promptcraft/content/v1/resources_pb";
import { TEST_SERVICE_TOKEN } from "./analytics-e2e-helpers.js";
import { ContentHarness, ok, PROTOCOLS, type TestUser } from "./content-e2e-helpers.js";
import { testServiceEnv } from "./identity-e2e-helpers.js";

/*
 * Content reports its usage to analytics (issue 11, point 2): `view` for reads by label, `render`
 * for RenderTemplate, streamed by content's UsageReporter with the service credential; and a
 * content call never fails or waits because analytics is down, and no usage is lost once it is back.
 */

const h = new ContentHarness();
const M = ContentService.method;
let analytics: RunningService | undefined;
let analyticsPort = 0;

async function startAnalytics(port: number): Promise<void> {
  analytics = await startService(analyticsService, loadConfig(analyticsService.config, { ...testServiceEnv(), GRPC_PORT: String(port), SERVICE_TOKEN: TEST_SERVICE_TOKEN }));
  analyticsPort = analytics.grpcPort;
}

beforeAll(async () => {
  await startAnalytics(0);
  await h.start({ SERVICE_TOKEN: TEST_SERVICE_TOKEN, ANALYTICS_URL: `http://127.0.0.1:${analyticsPort}` });
});
afterAll(async () => {
  await h.close();
  await analytics?.close();
});

interface UsageRow {
  kind: string;
  user_id: string | null;
  entity_id: string;
  entity_version: number;
  label: string | null;
}

async function usageOf(tenantId: string): Promise<UsageRow[]> {
  const { rows } = await h.db.raw<{ rows: UsageRow[] }>(
    "select kind, user_id, entity_id, entity_version, label from usage_event where tenant_id = ? order by kind, entity_version, label",
    [tenantId],
  );
  return rows;
}

/** Waits (polling, up to ~20 s: the reporter's retry backoff reaches 5 s) until `tenantId` has `n` usage events. */
async function untilUsage(tenantId: string, n: number): Promise<UsageRow[]> {
  let rows: UsageRow[] = [];
  for (let i = 0; i < 400; i++) {
    rows = await usageOf(tenantId);
    if (rows.length >= n) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return rows;
}

async function templateWithLabel(protocol: "grpc" | "connect", editor: TestUser): Promise<string> {
  const created = ok(await h.call(protocol, M.createEntity, { entity: { type: EntityType.TEMPLATE, title: "t", content: { template: "Hi {{name}}" } } }, editor.token));
  ok(await h.call(protocol, M.updateEntity, { entity: { id: created.id, content: { template: "Hello {{name}}" } }, updateMask: { paths: ["content"] } }, editor.token));
  ok(await h.call(protocol, M.setLabel, { entityId: created.id, label: "production", version: 1 }, editor.token));
  return created.id;
}

describe("content usage in analytics", () => {
  for (const protocol of PROTOCOLS) {
    test(`${protocol}: reads by label count as views, renders as renders (entity, version, label, user); other reads count nothing`, async () => {
      const t = await h.tenantWith(["admin"]);
      const editor = t.users[0]!;
      const id = await templateWithLabel(protocol, editor);
      ok(await h.call(protocol, M.getEntity, { entityId: id, label: "production" }, editor.token));
      ok(await h.call(protocol, M.getEntity, { entityId: id, label: "latest" }, editor.token));
      ok(await h.call(protocol, M.getEntity, { entityId: id }, editor.token));
      ok(await h.call(protocol, M.getEntity, { entityId: id, version: 1 }, editor.token));
      ok(await h.call(protocol, M.renderTemplate, { entityId: id, label: "production", variables: { name: "Ada" } }, editor.token));
      ok(await h.call(protocol, M.renderTemplate, { entityId: id, variables: { name: "Ada" } }, editor.token));
      const rows = await untilUsage(t.tenantId, 4);
      assert.deepEqual(rows, [
        { kind: "render", user_id: editor.id, entity_id: id, entity_version: 1, label: "production" },
        { kind: "render", user_id: editor.id, entity_id: id, entity_version: 2, label: null },
        { kind: "view", user_id: editor.id, entity_id: id, entity_version: 1, label: "production" },
        { kind: "view", user_id: editor.id, entity_id: id, entity_version: 2, label: "latest" },
      ]);
    });
  }

  test("analytics down: content serves every read, and once analytics is back all the usage arrives, once", async () => {
    const t = await h.tenantWith(["admin"]);
    const editor = t.users[0]!;
    const id = await templateWithLabel("grpc", editor);
    const port = analyticsPort;
    await analytics!.close();
    analytics = undefined;
    const reads = 40;
    for (let i = 0; i < reads; i++) {
      const protocol = PROTOCOLS[i % 2]!;
      if (i % 4 < 2) ok(await h.call(protocol, M.getEntity, { entityId: id, label: "production" }, editor.token));
      else ok(await h.call(protocol, M.renderTemplate, { entityId: id, label: "production", variables: { name: "x" } }, editor.token));
    }
    assert.equal((await usageOf(t.tenantId)).length, 0, "nothing can have arrived while analytics was down");
    await startAnalytics(port);
    const rows = await untilUsage(t.tenantId, reads);
    assert.equal(rows.length, reads, "every read counted, none twice");
    // Quiet for a moment longer: a retried stream must not add copies.
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await usageOf(t.tenantId)).length, reads);
  });

  test("analytics restarting while content streams usage: every read counted once", async () => {
    const t = await h.tenantWith(["admin"]);
    const editor = t.users[0]!;
    const id = await templateWithLabel("grpc", editor);
    let reads = 0;
    let reading = true;
    const load = (async () => {
      while (reading) {
        ok(await h.call(PROTOCOLS[reads % 2]!, M.getEntity, { entityId: id, label: "production" }, editor.token));
        reads++;
      }
    })();
    try {
      await untilUsage(t.tenantId, 10);
      const port = analyticsPort;
      await analytics!.close();
      analytics = undefined;
      await startAnalytics(port);
      await untilUsage(t.tenantId, reads + 10);
    } finally {
      reading = false;
      await load;
    }
    const rows = await untilUsage(t.tenantId, reads);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(rows.length, reads);
    assert.equal((await usageOf(t.tenantId)).length, reads, "none counted twice");
  });
});
