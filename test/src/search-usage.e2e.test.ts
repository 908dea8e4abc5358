import { afterAll, beforeAll, test } from "vitest";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { analyticsService } from "@promptcraft/analytics";
import { loadConfig, startService, type RunningService } from "@promptcraft/platform";
import { SearchMode } from "@promptcraft/proto/promptcraft/search/v1/resources_pb";
import { SearchService } from "@promptcraft/proto/promptcraft/search/v1/search_service_pb";
import { TEST_SERVICE_TOKEN } from "./analytics-e2e-helpers.js";
import { testServiceEnv } from "./identity-e2e-helpers.js";
import { ok, PROTOCOLS, SearchHarness } from "./search-e2e-helpers.js";

/** Search reports its usage to analytics: `search` per answered search call, `embedding` per version a provider embedded. */

const h = new SearchHarness();
let analytics: RunningService | undefined;

beforeAll(async () => {
  analytics = await startService(analyticsService, loadConfig(analyticsService.config, { ...testServiceEnv(), SERVICE_TOKEN: TEST_SERVICE_TOKEN }));
  await h.start({ SERVICE_TOKEN: TEST_SERVICE_TOKEN, ANALYTICS_URL: `http://127.0.0.1:${analytics.grpcPort}` });
});
afterAll(async () => {
  await h.close();
  await analytics?.close();
});

async function usage(tenantId: string, n: number) {
  let rows: { kind: string; model: string | null; entity_id: string | null; entity_version: number | null; user_id: string | null }[] = [];
  for (let i = 0; i < 400 && rows.length < n; i++) {
    ({ rows } = await h.db.raw<{ rows: typeof rows }>(
      "select kind, model, entity_id, entity_version, user_id from usage_event where tenant_id = ? order by kind, occurred_at",
      [tenantId],
    ));
    if (rows.length < n) await sleep(50);
  }
  return rows;
}

for (const protocol of PROTOCOLS) {
  test(`search and embedding usage reach analytics (${protocol})`, async () => {
    const t = await h.tenantWith(["editor"]);
    const editor = t.users[0]!;
    const id = await h.createEntity(editor, { title: "usage reporting probe" });
    await h.waitEmbedded(editor, [id]);
    ok(await h.searchCall(protocol, SearchService.method.searchEntities, { query: "usage probe", mode: SearchMode.SEMANTIC }, editor.token));
    const rows = await usage(t.tenantId, 2);
    assert.deepEqual(
      rows.map((r) => [r.kind, r.model, r.entity_id, r.entity_version, r.user_id]),
      [
        ["embedding", "local-hash-384", id, 1, null],
        ["search", "local-hash-384", null, null, editor.id],
      ],
    );
  });
}
