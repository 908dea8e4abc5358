import { afterAll, beforeAll, describe, test } from "vitest";
import assert from "node:assert/strict";
import { createServer, type Http2Server } from "node:http2";
import { QuotaMetric } from "@promptcraft/proto/promptcraft/analytics/v1/resources_pb";
import type { CallContext } from "./context.js";
import { createLogger } from "./logger.js";
import { QuotaGate } from "./quota-gate.js";

/*
 * The quota gate when analytics is slow: an HTTP/2 server that takes every call and never answers.
 * A tenant's first calls are allowed once they waited `timeoutMs`, counted as unchecked, while the
 * check itself goes on in the background.
 * (Refusals, the cache and analytics down are covered end to end: test/src/content-quotas.)
 */

let silent: Http2Server;
let port = 0;

beforeAll(async () => {
  silent = createServer();
  // Takes the streams and never answers; the client's cancellations are no error here.
  silent.on("session", (session) => session.on("error", () => {}));
  silent.on("stream", (stream) => stream.on("error", () => {}));
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  port = (silent.address() as { port: number }).port;
});
afterAll(async () => {
  await new Promise((resolve) => silent.close(resolve));
});

function callContext(tenantId: string): CallContext {
  return {
    auth: { tenantId, userId: "u", role: "editor", kind: "access_token" },
    header: (name: string) => (name === "authorization" ? "Bearer t" : undefined),
    requestId: "r",
    deadline: undefined,
    traceContext: undefined,
    signal: new AbortController().signal,
  } as unknown as CallContext;
}

describe("QuotaGate", () => {
  test("analytics slow past the wait: a tenant's first calls are allowed unchecked and counted, and no call failed yet", async () => {
    const gate = new QuotaGate({ analyticsUrl: `http://127.0.0.1:${port}`, metric: QuotaMetric.MONTHLY_RENDERS, cacheMs: 60_000, timeoutMs: 50, log: createLogger("test", "silent") });
    try {
      await gate.consume(callContext("t1"));
      await gate.consume(callContext("t1"));
      const [failures, unchecked] = await Promise.all(gate.metrics.slice(0, 2).map(async (m) => (await m.get()).values.map((v) => [v.labels.metric, v.value])));
      assert.deepEqual(unchecked, [["QUOTA_METRIC_MONTHLY_RENDERS", 2]]);
      assert.deepEqual(failures, [], "the check goes on in the background (its own longer deadline)");
    } finally {
      gate.close();
    }
  });
});
