import { afterAll, beforeAll, test } from "vitest";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { analyticsService } from "@promptcraft/analytics";
import { loadConfig, startService, type RunningService } from "@promptcraft/platform";
import { GraphService } from "@promptcraft/proto/promptcraft/graph/v1/graph_service_pb";
import { RelationshipType } from "@promptcraft/proto/promptcraft/graph/v1/resources_pb";
import { TEST_SERVICE_TOKEN } from "./analytics-e2e-helpers.js";
import { GraphHarness, ok, PROTOCOLS } from "./graph-e2e-helpers.js";
import { testServiceEnv } from "./identity-e2e-helpers.js";

/** Graph reports a `resolve` usage event per ResolveDependencies (USAGE_KIND_RESOLVE), which analytics stores. */

const h = new GraphHarness();
let analytics: RunningService | undefined;

beforeAll(async () => {
  analytics = await startService(analyticsService, loadConfig(analyticsService.config, { ...testServiceEnv(), SERVICE_TOKEN: TEST_SERVICE_TOKEN }));
  await h.start({ graphEnv: { SERVICE_TOKEN: TEST_SERVICE_TOKEN, ANALYTICS_URL: `http://127.0.0.1:${analytics.grpcPort}` } });
});
afterAll(async () => {
  await h.close();
  await analytics?.close();
});

async function resolveEvents(tenantId: string, n: number) {
  let rows: { kind: string; entity_id: string | null; user_id: string | null; metadata: Record<string, unknown> }[] = [];
  for (let i = 0; i < 400 && rows.length < n; i++) {
    ({ rows } = await h.db.raw<{ rows: typeof rows }>("select kind, entity_id, user_id, metadata from usage_event where tenant_id = ? order by occurred_at", [tenantId]));
    if (rows.length < n) await sleep(50);
  }
  return rows;
}

for (const protocol of PROTOCOLS) {
  test(`ResolveDependencies is counted as resolve usage (${protocol})`, async () => {
    const t = await h.tenantWith(["editor"]);
    const editor = t.users[0]!;
    const [template, context] = await h.entities(t.tenantId, editor.id, 2);
    ok(await h.call(protocol, GraphService.method.createRelationship, { relationship: { sourceEntityId: template, targetEntityId: context, type: RelationshipType.DEPENDS_ON } }, editor.token));
    const now = ok(await h.call(protocol, GraphService.method.resolveDependencies, { entityId: template }, editor.token));
    const asOf = { seconds: BigInt(Math.floor(Date.now() / 1000) - 60) };
    const past = ok(await h.call(protocol, GraphService.method.resolveDependencies, { entityId: template, asOfTime: asOf }, editor.token));
    assert.deepEqual([now.dependencies.length, past.dependencies.length], [1, 0], "the relationship did not exist a minute ago");

    const rows = await resolveEvents(t.tenantId, 2);
    assert.deepEqual(
      rows.map((r) => [r.kind, r.entity_id, r.user_id, r.metadata.dependencies, r.metadata.complete, r.metadata.as_of]),
      [
        ["resolve", template, editor.id, 1, true, false],
        ["resolve", template, editor.id, 0, true, true],
      ],
    );
  });
}
