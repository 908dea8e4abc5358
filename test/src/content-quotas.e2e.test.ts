import { afterAll, beforeAll, describe, test } from "vitest";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { analyticsService } from "@promptcraft/analytics";
import { createServiceClient, ConnectError } from "@promptcraft/client";
import { contentService, type ContentState } from "@promptcraft/content";
import { loadConfig, startService, type RunningService } from "@promptcraft/platform";
import { QuotaFailureSchema, RetryInfoSchema } from "@promptcraft/proto/google/rpc/error_details_pb";
import { AnalyticsService } from "@promptcraft/proto/promptcraft/analytics/v1/analytics_service_pb";
import { QuotaMetric } from "@promptcraft/proto/promptcraft/analytics/v1/resources_pb";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { EntityType } from "@promptcraft/proto/promptcraft/content/v1/resources_pb";
import { grpcUnary } from "@promptcraft/testing";
import { TEST_SERVICE_TOKEN, usageEvent } from "./analytics-e2e-helpers.js";
import { ContentHarness, failure, ok, PROTOCOLS, type Protocol, type TestUser } from "./content-e2e-helpers.js";
import { testServiceEnv } from "./identity-e2e-helpers.js";
import { unaryCall } from "./rpc-outcomes.js";

/*
 * Content enforces the tenant's monthly render quota (issue 11, point 4): RenderTemplate asks
 * analytics' CheckQuota (fresh for 300 ms per tenant here; a generous first wait, so that a loaded
 * test machine never turns a check into "unchecked") with the caller's credentials and refuses
 * with RESOURCE_EXHAUSTED QUOTA_EXCEEDED once the renders content itself reported are used up;
 * with analytics down it renders anyway.
 */

const h = new ContentHarness();
const M = ContentService.method;
const CACHE_MS = 300;
let analytics: RunningService | undefined;
let analyticsPort = 0;

/** Analytics on `port`, verifying the callers' tokens with the harness's identity (CheckQuota carries the caller's). */
async function startAnalytics(port: number): Promise<void> {
  analytics = await startService(
    analyticsService,
    loadConfig(analyticsService.config, { ...testServiceEnv(), GRPC_PORT: String(port), SERVICE_TOKEN: TEST_SERVICE_TOKEN, IDENTITY_URL: `http://127.0.0.1:${h.identity.grpcPort}` }),
  );
}

/** A port free now (content must know analytics' address before identity, and so analytics, starts). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

/** Content's settings here (beside the harness's): analytics' address, the cache, a generous first wait. */
const quotaEnv = () => ({ SERVICE_TOKEN: TEST_SERVICE_TOKEN, ANALYTICS_URL: `http://127.0.0.1:${analyticsPort}`, QUOTA_CACHE_MS: String(CACHE_MS), QUOTA_CHECK_TIMEOUT_MS: "5000" });
/** The whole configuration of another content replica. */
const contentEnv = () => ({ ...testServiceEnv(), IDENTITY_URL: `http://127.0.0.1:${h.identity.grpcPort}`, ...quotaEnv() });

beforeAll(async () => {
  analyticsPort = await freePort();
  await h.start(quotaEnv());
  await startAnalytics(analyticsPort);
});
afterAll(async () => {
  await h.close();
  await analytics?.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function template(protocol: Protocol, editor: TestUser): Promise<string> {
  return ok(await h.call(protocol, M.createEntity, { entity: { type: EntityType.TEMPLATE, title: "t", content: { template: "Hi {{name}}" } } }, editor.token)).id;
}

const render = (protocol: Protocol, id: string, user: TestUser) => h.call(protocol, M.renderTemplate, { entityId: id, variables: { name: "Ada" } }, user.token);

/** The tenant's monthly renders as analytics counts them (ListQuotas). */
async function rendersUsed(user: TestUser): Promise<bigint> {
  const { quotas } = ok(await unaryCall(AnalyticsService, analytics!, "grpc", AnalyticsService.method.listQuotas, {}, { authorization: `Bearer ${user.token}` }));
  return quotas.find((q) => q.metric === QuotaMetric.MONTHLY_RENDERS)!.used;
}

/** Waits (polling, up to ~20 s: the reporter's retry backoff reaches 5 s) until analytics counts `n` renders. */
async function untilRenders(user: TestUser, n: bigint): Promise<bigint> {
  let used = 0n;
  for (let i = 0; i < 400 && (used = await rendersUsed(user)) < n; i++) await sleep(50);
  return used;
}

/** The QuotaFailure subjects and RetryInfo delay (ms) of a refused render, as each protocol's client decodes them. */
async function refusalDetails(protocol: Protocol, id: string, user: TestUser): Promise<{ subjects: string[]; retryMs: number }> {
  const request = { entityId: id, variables: { name: "Ada" } };
  const headers = { authorization: `Bearer ${user.token}` };
  if (protocol === "grpc") {
    const result = await grpcUnary(`127.0.0.1:${h.content.grpcPort}`, M.renderTemplate, request, { metadata: headers });
    assert.ok("failure" in result);
    return { subjects: result.failure.quotaFailure?.violations.map((v) => v.subject) ?? [], retryMs: Number(result.failure.retryInfo?.retryDelay?.seconds ?? -1n) * 1000 };
  }
  const client = createServiceClient(ContentService, `http://127.0.0.1:${h.content.connectPort}`, { protocol: "connect" });
  const err = await client.renderTemplate(request, { headers }).then(
    () => assert.fail("expected a refusal"),
    (e: unknown) => ConnectError.from(e),
  );
  return {
    subjects: err.findDetails(QuotaFailureSchema)[0]?.violations.map((v) => v.subject) ?? [],
    retryMs: Number(err.findDetails(RetryInfoSchema)[0]?.retryDelay?.seconds ?? -1n) * 1000,
  };
}

const EXHAUSTED = { code: "RESOURCE_EXHAUSTED", reason: "QUOTA_EXCEEDED" };

describe("content render quota", () => {
  for (const protocol of PROTOCOLS) {
    test(`${protocol}: renders stop at the tenant's monthly render quota, counted by analytics from content's own usage reports`, async () => {
      const t = await h.tenantWith(["editor"], { max_monthly_renders: 3 });
      const editor = t.users[0]!;
      const id = await template(protocol, editor);
      for (let i = 0; i < 3; i++) ok(await render(protocol, id, editor));
      const refused = await render(protocol, id, editor);
      assert.deepEqual(failure(refused), EXHAUSTED);
      assert.deepEqual(refused.ok ? {} : refused.metadata, { metric: "QUOTA_METRIC_MONTHLY_RENDERS", limit: "3" });
      const details = await refusalDetails(protocol, id, editor);
      assert.deepEqual(details.subjects, [`tenant:${t.tenantId}`]);
      assert.ok(details.retryMs > 0, "RetryInfo: until the month ends");

      // Content's usage reporter brought the three renders to analytics, and only those: another
      // content replica, which has not seen this tenant, refuses its first render on analytics' count.
      assert.equal(await untilRenders(editor, 3n), 3n);
      const replica = await startService(contentService, loadConfig(contentService.config, contentEnv()));
      try {
        assert.deepEqual(failure(await unaryCall(ContentService, replica, protocol, M.renderTemplate, { entityId: id, variables: { name: "Ada" } }, { authorization: `Bearer ${editor.token}` })), EXHAUSTED);
      } finally {
        await replica.close();
      }
      // Other reads are not rendering: they go on.
      ok(await h.call(protocol, M.getEntity, { entityId: id }, editor.token));
      assert.equal(await rendersUsed(editor), 3n);
    });

    test(`${protocol}: renders reported elsewhere count (a fresh content cache refuses at once); tenants without a render quota render freely`, async () => {
      const t = await h.tenantWith(["editor"], { max_monthly_renders: 2 });
      const editor = t.users[0]!;
      const id = await template(protocol, editor);
      ok(await unaryCall(AnalyticsService, analytics!, protocol, AnalyticsService.method.ingestUsageEvents, { events: [usageEvent(), usageEvent()] }, { authorization: `Bearer ${editor.token}` }));
      assert.deepEqual(failure(await render(protocol, id, editor)), EXHAUSTED);

      const open = await h.tenantWith(["editor"]);
      const id2 = await template(protocol, open.users[0]!);
      for (let i = 0; i < 5; i++) ok(await render(protocol, id2, open.users[0]!));
    });
  }

  test("an API key's renders are checked with the key itself, and count against the same tenant quota", async () => {
    const t = await h.tenantWith(["admin"], { max_monthly_renders: 2 });
    const admin = t.users[0]!;
    const key = { id: "", role: "editor" as const, token: await h.apiKey(admin.token, "editor") };
    const id = await template("grpc", key);
    ok(await render("grpc", id, key));
    ok(await render("connect", id, key));
    assert.deepEqual(failure(await render("connect", id, key)), EXHAUSTED);
    assert.equal(await untilRenders(admin, 2n), 2n);
  });

  test("analytics down: renders go on unchecked (a failed check is counted), and the quota applies again once it is back", async () => {
    const t = await h.tenantWith(["editor"], { max_monthly_renders: 1 });
    const editor = t.users[0]!;
    const id = await template("grpc", editor);
    const gate = (h.content.state as ContentState).renderQuota;
    const count = async (i: number) => (await gate.metrics[i]!.get()).values.reduce((n, v) => n + v.value, 0);
    const [failuresBefore, uncheckedBefore] = [await count(0), await count(1)];
    await analytics!.close();
    analytics = undefined;
    for (let i = 0; i < 6; i++) ok(await render(PROTOCOLS[i % 2]!, id, editor));
    assert.ok((await count(0)) > failuresBefore, "the unanswered check is counted in promptcraft_quota_check_failures_total");
    assert.equal((await count(1)) - uncheckedBefore, 6, "each render allowed unchecked is counted in promptcraft_quota_unchecked_total");

    await startAnalytics(analyticsPort);
    // The six renders reach analytics (the reporter buffered them); once the gate's refresh has
    // brought analytics' answer (a render past the cache window starts it), renders are refused.
    assert.equal(await untilRenders(editor, 6n), 6n);
    let outcome = await render("connect", id, editor);
    for (let i = 0; i < 100 && outcome.ok; i++) {
      await sleep(CACHE_MS / 3);
      outcome = await render("connect", id, editor);
    }
    assert.deepEqual(failure(outcome), EXHAUSTED);
  });
});
