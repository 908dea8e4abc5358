import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { Health, HealthCheckResponse_ServingStatus } from "@promptcraft/proto/grpc/health/v1/health_pb";
import { BadRequestSchema, ErrorInfoSchema } from "@promptcraft/proto/google/rpc/error_details_pb";
import { createServiceClient, ConnectError, Code } from "@promptcraft/client";
import { grpcUnary, grpc } from "@promptcraft/testing";
import { createLogger } from "./logger.js";
import { NotFoundError, ResourceExhaustedError } from "./errors.js";
import { serve } from "./handlers.js";
import { startServer, type RunningServer } from "./server.js";
import { ConfigError, loadConfig, serviceConfig } from "./config.js";

const ENTITY_ID = "6f1c1b1e-8d1a-4a57-9a0f-3f5b8c1d2e4f";
const MISSING_ID = "00000000-0000-4000-8000-000000000000";
const SECRET = "password=hunter2";

let server: RunningServer;
let grpcAddress: string;
let connectUrl: string;
/** What the slow handler exposes to the test driving it. */
const slow: { signal?: AbortSignal; release?: () => void } = {};
// Read through functions: the handler sets these asynchronously, which flow analysis cannot see.
const slowSignal = (): AbortSignal | undefined => slow.signal;
const slowRelease = (): (() => void) | undefined => slow.release;

// Test doubles on a real contract: what matters here is the platform around the handlers.
const handlers = serve(ContentService, {
  getEntity: async (request, ctx) => {
    if (request.entityId === MISSING_ID) throw new NotFoundError(`entity ${request.entityId} not found`);
    if (request.entityId === ENTITY_ID && request.label === "boom") throw new Error(`db exploded: ${SECRET}`);
    if (request.label === "slow") {
      slow.signal = ctx.signal;
      await new Promise<void>((resolve) => {
        slow.release = resolve;
        ctx.signal.addEventListener("abort", () => resolve());
      });
    }
    if (request.label === "limited") throw new ResourceExhaustedError("too many requests", { retryAfterMs: 1500 });
    return { id: request.entityId, currentVersion: 1 };
  },
});

beforeAll(async () => {
  server = await startServer({
    name: "test",
    host: "127.0.0.1",
    grpcPort: 0,
    connectPort: 0,
    services: [handlers],
    log: createLogger("test", "silent"),
    shutdownGraceMs: 2000,
  });
  grpcAddress = `127.0.0.1:${server.grpcPort}`;
  connectUrl = `http://127.0.0.1:${server.connectPort}`;
});
afterAll(async () => {
  await server.close();
});

describe("one pipeline, two transports", () => {
  for (const protocol of ["grpc", "connect", "grpc-web"] as const) {
    const url = () => (protocol === "grpc" ? `http://${grpcAddress}` : connectUrl);

    test(`${protocol}: a handled call returns the handler's message`, async () => {
      const client = createServiceClient(ContentService, url(), { protocol });
      const entity = await client.getEntity({ entityId: ENTITY_ID });
      assert.equal(entity.id, ENTITY_ID);
      assert.equal(entity.currentVersion, 1);
    });

    test(`${protocol}: invalid input is INVALID_ARGUMENT naming the field`, async () => {
      const client = createServiceClient(ContentService, url(), { protocol });
      const err = await client.getEntity({ entityId: "not-a-uuid" }).then(() => assert.fail("expected an error"), (e: unknown) => ConnectError.from(e));
      assert.equal(err.code, Code.InvalidArgument);
      const badRequest = err.findDetails(BadRequestSchema)[0];
      assert.ok(badRequest, "BadRequest detail present");
      assert.deepEqual(badRequest.fieldViolations.map((v) => v.field), ["entity_id"]);
    });

    test(`${protocol}: domain errors keep their code and ErrorInfo reason`, async () => {
      const client = createServiceClient(ContentService, url(), { protocol });
      const err = await client.getEntity({ entityId: MISSING_ID }).then(() => assert.fail("expected an error"), (e: unknown) => ConnectError.from(e));
      assert.equal(err.code, Code.NotFound);
      const info = err.findDetails(ErrorInfoSchema)[0];
      assert.equal(info?.reason, "RESOURCE_NOT_FOUND");
      assert.equal(info?.domain, "promptcraft.dev");
    });

    test(`${protocol}: an unexpected error is INTERNAL and its cause is never sent`, async () => {
      const client = createServiceClient(ContentService, url(), { protocol });
      const err = await client.getEntity({ entityId: ENTITY_ID, label: "boom" }).then(() => assert.fail("expected an error"), (e: unknown) => ConnectError.from(e));
      assert.equal(err.code, Code.Internal);
      assert.ok(!err.message.includes("hunter2"), `cause leaked: ${err.message}`);
      assert.match(err.rawMessage, /request id [0-9a-f-]{36}/);
    });

    test(`${protocol}: a method without a handler is UNIMPLEMENTED`, async () => {
      const client = createServiceClient(ContentService, url(), { protocol });
      const err = await client.listEntities({}).then(() => assert.fail("expected an error"), (e: unknown) => ConnectError.from(e));
      assert.equal(err.code, Code.Unimplemented);
    });

    test(`${protocol}: health and reflection-free health check answer SERVING`, async () => {
      const client = createServiceClient(Health, url(), { protocol });
      const res = await client.check({ service: "" });
      assert.equal(res.status, HealthCheckResponse_ServingStatus.SERVING);
      const own = await client.check({ service: ContentService.typeName });
      assert.equal(own.status, HealthCheckResponse_ServingStatus.SERVING);
    });
  }

  test("Connect port serves HTTP/1.1 and HTTP/2 (h2c) on the same port", async () => {
    const res = await fetch(`${connectUrl}/grpc.health.v1.Health/Check`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { status: "SERVING" });
    // connect-node's default Connect transport speaks HTTP/2 with prior knowledge.
    const { createConnectTransport } = await import("@connectrpc/connect-node");
    const { createClient } = await import("@connectrpc/connect");
    const h2 = createClient(Health, createConnectTransport({ baseUrl: connectUrl, httpVersion: "2" }));
    assert.equal((await h2.check({ service: "" })).status, HealthCheckResponse_ServingStatus.SERVING);
  });
});

describe("gRPC wire details (plain @grpc/grpc-js client)", () => {
  test("rich errors arrive in grpc-status-details-bin", async () => {
    const result = await grpcUnary(grpcAddress, ContentService.method.getEntity, { entityId: "nope" });
    assert.ok("failure" in result);
    assert.equal(result.failure.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(result.failure.errorInfo?.reason, "INVALID_REQUEST");
    assert.deepEqual(result.failure.badRequest?.fieldViolations.map((v) => v.field), ["entity_id"]);
  });

  test("RESOURCE_EXHAUSTED carries RetryInfo", async () => {
    const client = createServiceClient(ContentService, `http://${grpcAddress}`);
    const err = await client.getEntity({ entityId: ENTITY_ID, label: "limited" }).then(() => assert.fail("expected an error"), (e: unknown) => ConnectError.from(e));
    assert.equal(err.code, Code.ResourceExhausted);
    const { RetryInfoSchema } = await import("@promptcraft/proto/google/rpc/error_details_pb");
    const retry = err.findDetails(RetryInfoSchema)[0];
    assert.equal(Number(retry?.retryDelay?.seconds), 1);
    assert.equal(retry?.retryDelay?.nanos, 500_000_000);
  });

  test("a malformed message is INVALID_ARGUMENT, not INTERNAL", async () => {
    const client = new grpc.Client(grpcAddress, grpc.credentials.createInsecure());
    const failure = await new Promise<grpc.ServiceError>((resolve) =>
      client.makeUnaryRequest(
        `/${ContentService.typeName}/GetEntity`,
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.from([0x0a, 0xff, 0xff, 0xff]), // field 1, length far beyond the message
        (err) => resolve(err!),
      ),
    );
    client.close();
    assert.equal(failure.code, grpc.status.INVALID_ARGUMENT);
  });

  test("a client x-request-id is echoed; a failure always carries one", async () => {
    const ok = await grpcUnary(grpcAddress, ContentService.method.getEntity, { entityId: ENTITY_ID }, { metadata: { "x-request-id": "req-123" } });
    assert.ok("response" in ok);
    assert.equal(ok.headers.get("x-request-id")[0], "req-123");
    const failed = await grpcUnary(grpcAddress, ContentService.method.getEntity, { entityId: MISSING_ID });
    assert.ok("failure" in failed);
    assert.match(String(failed.failure.metadata.get("x-request-id")[0]), /^[0-9a-f-]{36}$/);
  });

  test("a deadline reaches the handler as an aborted signal", async () => {
    slow.signal = undefined;
    const result = await grpcUnary(grpcAddress, ContentService.method.getEntity, { entityId: ENTITY_ID, label: "slow" }, { deadlineMs: 200 });
    assert.ok("failure" in result);
    assert.equal(result.failure.code, grpc.status.DEADLINE_EXCEEDED);
    for (let i = 0; i < 50 && !slowSignal()?.aborted; i++) await sleep(20);
    assert.equal(slowSignal()?.aborted, true);
  });
});

describe("graceful shutdown", () => {
  test("in-flight calls finish, new calls are refused, health turns NOT_SERVING", async () => {
    const own = await startServer({
      name: "drain",
      host: "127.0.0.1",
      grpcPort: 0,
      connectPort: 0,
      services: [handlers],
      log: createLogger("drain", "silent"),
      shutdownGraceMs: 5000,
    });
    slow.release = undefined;
    const client = createServiceClient(ContentService, `http://127.0.0.1:${own.grpcPort}`);
    const inFlight = client.getEntity({ entityId: ENTITY_ID, label: "slow" });
    for (let i = 0; i < 100 && !slowRelease(); i++) await sleep(10);
    const release = slowRelease();
    assert.ok(release, "the slow call reached its handler");
    const closing = own.close();
    assert.equal(own.health.get(""), HealthCheckResponse_ServingStatus.NOT_SERVING);
    release();
    const entity = await inFlight;
    assert.equal(entity.id, ENTITY_ID, "the in-flight call completed normally");
    await closing;
    const after = await client.getEntity({ entityId: ENTITY_ID }).then(() => "answered", (e: unknown) => ConnectError.from(e).code);
    assert.equal(after, Code.Unavailable);
  });
});

describe("config", () => {
  const schema = serviceConfig({ grpcPort: 1, connectPort: 2 }, {});

  test("a valid environment parses with defaults", () => {
    const config = loadConfig(schema, { DATABASE_URL: "postgres://u@localhost:5432/db" });
    assert.equal(config.GRPC_PORT, 1);
    assert.equal(config.CONNECT_PORT, 2);
    assert.equal(config.HOST, "127.0.0.1");
  });

  test("a bad environment fails with every problem named", () => {
    assert.throws(
      () => loadConfig(schema, { DATABASE_URL: "mysql://x", GRPC_PORT: "70000" }),
      (err: unknown) => err instanceof ConfigError && /DATABASE_URL/.test(err.message) && /GRPC_PORT/.test(err.message),
    );
    assert.throws(() => loadConfig(schema, {}), (err: unknown) => err instanceof ConfigError && /DATABASE_URL: missing/.test(err.message));
  });
});
