import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider, type ReadableSpan } from "@opentelemetry/sdk-trace";
import { pino, type Logger } from "pino";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { Health } from "@promptcraft/proto/grpc/health/v1/health_pb";
import { createServiceClient, ConnectError, Code, withTraceContext } from "@promptcraft/client";
import { ConfigError, loadConfig, serviceConfig } from "./config.js";
import { NotFoundError } from "./errors.js";
import { serve } from "./handlers.js";
import { startServer, type RunningServer } from "./server.js";
import { startTracing, tracesUrl, type Tracing } from "./tracing.js";

/**
 * Tracing in the platform (issue 10, item 3): off without an OTLP endpoint (no tracer, no span, no
 * trace field), a SERVER span per call on both transports with the RPC conventions' attributes and
 * status rules when on, CLIENT spans from @promptcraft/client, and a real OTLP/HTTP export.
 */

const ENTITY_ID = "6f1c1b1e-8d1a-4a57-9a0f-3f5b8c1d2e4f";
const MISSING_ID = "00000000-0000-4000-8000-000000000000";
const METHOD = "promptcraft.content.v1.ContentService/GetEntity";
const PROTOCOLS = ["grpc", "connect", "grpc-web"] as const;

const handlers = serve(ContentService, {
  getEntity: async (request) => {
    if (request.entityId === MISSING_ID) throw new NotFoundError("entity not found");
    if (request.label === "boom") throw new Error("the handler broke");
    return { id: request.entityId, currentVersion: 1 };
  },
});

const schema = serviceConfig({ grpcPort: 0, connectPort: 0 }, {});
const configOf = (env: Record<string, string> = {}) => loadConfig(schema, { DATABASE_URL: "postgres://u@127.0.0.1/db", ...env });

/** A debug-level logger whose JSON lines land in `lines`. */
function capturingLogger(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  return { lines, log: pino({ level: "debug" }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) }) };
}

async function serveWith(log: Logger, tracing: Tracing): Promise<RunningServer> {
  return startServer({ name: "test", host: "127.0.0.1", grpcPort: 0, connectPort: 0, services: [handlers], log, tracer: tracing.tracer });
}

const urlOf = (server: RunningServer, protocol: (typeof PROTOCOLS)[number]) =>
  `http://127.0.0.1:${protocol === "grpc" ? server.grpcPort : server.connectPort}`;

function traceparent(): { traceId: string; spanId: string; header: string } {
  const traceId = randomBytes(16).toString("hex");
  const spanId = randomBytes(8).toString("hex");
  return { traceId, spanId, header: `00-${traceId}-${spanId}-01` };
}

async function codeOf(call: Promise<unknown>): Promise<Code | "OK"> {
  return call.then(
    () => "OK" as const,
    (e: unknown) => ConnectError.from(e).code,
  );
}

describe("tracing off (no OTLP endpoint)", () => {
  const { log, lines } = capturingLogger();
  // Anything that reached OpenTelemetry's global API would land here.
  const global = new InMemorySpanExporter();
  let server: RunningServer;
  let tracing: Tracing;
  beforeAll(async () => {
    trace.setGlobalTracerProvider(new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter: global })] }));
    tracing = startTracing({ config: configOf(), service: "test", log });
    server = await serveWith(log, tracing);
  });
  afterAll(async () => {
    await server.close();
    trace.disable();
  });

  test("no tracer is made, and OTEL_SDK_DISABLED keeps it off with an endpoint set", () => {
    assert.equal(tracing.tracer, undefined);
    assert.equal(startTracing({ config: configOf({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318", OTEL_SDK_DISABLED: "true" }), service: "test", log }).tracer, undefined);
  });

  for (const protocol of PROTOCOLS) {
    test(`${protocol}: a call with a traceparent creates no span and logs no trace fields`, async () => {
      const requestId = randomUUID();
      const client = createServiceClient(ContentService, urlOf(server, protocol), { protocol });
      const headers = { traceparent: traceparent().header, "x-request-id": requestId };
      assert.equal(await codeOf(client.getEntity({ entityId: ENTITY_ID }, { headers })), "OK");
      assert.equal(await codeOf(client.getEntity({ entityId: MISSING_ID }, { headers })), Code.NotFound);
      const own = lines.filter((l) => l.requestId === requestId);
      assert.equal(own.length, 2, "both calls logged");
      for (const line of own) assert.deepEqual(["traceId" in line, "spanId" in line], [false, false]);
      assert.deepEqual(global.getFinishedSpans(), []);
    });
  }
});

describe("tracing on: a SERVER span per call", () => {
  const { log, lines } = capturingLogger();
  const exporter = new InMemorySpanExporter();
  const clientExporter = new InMemorySpanExporter();
  let server: RunningServer;
  let tracing: Tracing;
  let clientTracing: Tracing;
  beforeAll(async () => {
    tracing = startTracing({ config: configOf(), service: "test", log, exporter });
    clientTracing = startTracing({ config: configOf(), service: "caller", log, exporter: clientExporter });
    server = await serveWith(log, tracing);
  });
  afterAll(async () => {
    await server.close();
    await Promise.all([tracing.shutdown(1000), clientTracing.shutdown(1000)]);
  });

  /** The one server span of `traceId`. */
  async function serverSpan(traceId: string): Promise<ReadableSpan> {
    await tracing.flush();
    const spans = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
    assert.equal(spans.length, 1, `one span in trace ${traceId}`);
    return spans[0]!;
  }

  for (const protocol of PROTOCOLS) {
    test(`${protocol}: the span continues the caller's trace, with the RPC conventions' attributes; its log lines name it`, async () => {
      const parent = traceparent();
      const requestId = randomUUID();
      const client = createServiceClient(ContentService, urlOf(server, protocol), { protocol });
      await client.getEntity({ entityId: ENTITY_ID }, { headers: { traceparent: parent.header, "x-request-id": requestId } });
      const span = await serverSpan(parent.traceId);
      assert.equal(span.kind, SpanKind.SERVER);
      assert.equal(span.name, METHOD);
      assert.equal(span.parentSpanContext?.spanId, parent.spanId);
      assert.deepEqual(span.attributes, {
        "rpc.system.name": protocol === "connect" ? "connectrpc" : "grpc",
        "rpc.method": METHOD,
        "rpc.status_code": "OK",
        "promptcraft.request_id": requestId,
      });
      assert.equal(span.status.code, SpanStatusCode.UNSET);
      assert.equal(span.resource.attributes["service.name"], "promptcraft-test");
      const own = lines.filter((l) => l.requestId === requestId);
      assert.ok(own.length > 0);
      for (const line of own) assert.deepEqual([line.traceId, line.spanId], [parent.traceId, span.spanContext().spanId]);
    });

    test(`${protocol}: health checks (probes every few seconds) make no span`, async () => {
      const parent = traceparent();
      const health = createServiceClient(Health, urlOf(server, protocol), { protocol });
      await health.check({ service: "" }, { headers: { traceparent: parent.header } });
      await tracing.flush();
      assert.deepEqual(exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === parent.traceId), []);
    });

    test(`${protocol}: client errors leave the status unset, server faults are errors with the exception recorded`, async () => {
      const client = createServiceClient(ContentService, urlOf(server, protocol), { protocol });
      const cases = [
        { request: { entityId: MISSING_ID }, code: "NOT_FOUND", error: false },
        { request: { entityId: "not-a-uuid" }, code: "INVALID_ARGUMENT", error: false },
        { request: { entityId: ENTITY_ID, label: "boom" }, code: "INTERNAL", error: true },
      ];
      for (const c of cases) {
        const parent = traceparent();
        await codeOf(client.getEntity(c.request, { headers: { traceparent: parent.header } }));
        const span = await serverSpan(parent.traceId);
        assert.equal(span.attributes["rpc.status_code"], c.code);
        assert.equal(span.status.code, c.error ? SpanStatusCode.ERROR : SpanStatusCode.UNSET, c.code);
        assert.equal(span.attributes["error.type"], c.error ? c.code : undefined);
        const exception = span.events.find((e) => e.name === "exception");
        assert.equal(exception?.attributes?.["exception.message"], c.error ? "the handler broke" : undefined);
      }
    });

    test(`${protocol}: a traced client makes a CLIENT span, the parent of the server's, itself the child of the context it is given`, async () => {
      const client = createServiceClient(ContentService, urlOf(server, protocol), { protocol, tracer: clientTracing.tracer });
      const root = clientTracing.tracer!.startSpan("caller's work");
      const parentContext = trace.setSpan(ROOT_CONTEXT, root);
      await client.getEntity({ entityId: ENTITY_ID }, withTraceContext(parentContext));
      assert.equal(await codeOf(client.getEntity({ entityId: MISSING_ID }, withTraceContext(parentContext))), Code.NotFound);
      root.end();
      await clientTracing.flush();
      const traceId = root.spanContext().traceId;
      const calls = clientExporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId && s.kind === SpanKind.CLIENT);
      assert.equal(calls.length, 2);
      for (const call of calls) {
        assert.equal(call.name, METHOD);
        assert.equal(call.parentSpanContext?.spanId, root.spanContext().spanId);
        assert.equal(call.attributes["server.address"], "127.0.0.1");
      }
      const [ok, notFound] = calls;
      // Any status but OK fails a client span (the conventions' rule for clients).
      assert.deepEqual([ok!.attributes["rpc.status_code"], ok!.status.code], ["OK", SpanStatusCode.UNSET]);
      assert.deepEqual([notFound!.attributes["rpc.status_code"], notFound!.status.code], ["NOT_FOUND", SpanStatusCode.ERROR]);
      await tracing.flush();
      const served = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
      assert.deepEqual(
        served.map((s) => s.parentSpanContext?.spanId).sort(),
        calls.map((c) => c.spanContext().spanId).sort(),
        "each server span is the child of its client span",
      );
    });
  }
});

describe("OTLP export", () => {
  const received: { path: string; type: string | undefined; token: string | undefined; body: Buffer }[] = [];
  let sink: http.Server;
  let status = 200;
  let endpoint: string;
  beforeAll(async () => {
    sink = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        received.push({ path: req.url ?? "", type: req.headers["content-type"], token: req.headers["x-token"] as string | undefined, body: Buffer.concat(chunks) });
        res.writeHead(status, { "content-type": "application/x-protobuf" });
        res.end();
      });
    });
    await new Promise<void>((resolve) => sink.listen(0, "127.0.0.1", resolve));
    endpoint = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/`;
  });
  afterAll(() => new Promise<void>((resolve) => sink.close(() => resolve())));

  test("spans go to <endpoint>/v1/traces as OTLP protobuf, with the configured headers, service name and resource", async () => {
    const { log } = capturingLogger();
    const tracing = startTracing({
      config: configOf({
        OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
        OTEL_EXPORTER_OTLP_HEADERS: "x-token=a%20secret",
        OTEL_SERVICE_NAME: "svc-under-test",
        OTEL_RESOURCE_ATTRIBUTES: "deployment.environment.name=unit",
      }),
      service: "test",
      log,
    });
    const server = await serveWith(log, tracing);
    try {
      await createServiceClient(ContentService, urlOf(server, "grpc")).getEntity({ entityId: ENTITY_ID });
    } finally {
      await server.close();
      await tracing.shutdown(5000);
    }
    assert.equal(received.length, 1);
    const [post] = received;
    assert.deepEqual([post!.path, post!.type, post!.token], ["/v1/traces", "application/x-protobuf", "a secret"]);
    for (const text of [METHOD, "svc-under-test", "deployment.environment.name", "unit"]) {
      assert.ok(post!.body.includes(Buffer.from(text)), `the export carries ${text}`);
    }
  });

  test("a refused export is logged as a warning", async () => {
    status = 400;
    const { log, lines } = capturingLogger();
    const tracing = startTracing({ config: configOf({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${endpoint}custom/traces` }), service: "test", log });
    const server = await serveWith(log, tracing);
    try {
      await createServiceClient(ContentService, urlOf(server, "connect"), { protocol: "connect" }).getEntity({ entityId: ENTITY_ID });
    } finally {
      await server.close();
      await tracing.shutdown(5000);
    }
    assert.equal(received.at(-1)?.path, "/custom/traces");
    assert.ok(lines.some((l) => l.msg === "tracing: span export failed" && l.level === 40), JSON.stringify(lines));
  });
});

describe("tracing configuration", () => {
  test("the traces URL: the base endpoint plus /v1/traces, or the traces endpoint as given", () => {
    assert.equal(tracesUrl(configOf()), undefined);
    assert.equal(tracesUrl(configOf({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" })), "http://collector:4318/v1/traces");
    assert.equal(tracesUrl(configOf({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/otlp/" })), "http://collector:4318/otlp/v1/traces");
    assert.equal(
      tracesUrl(configOf({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "https://tempo:443/v1/traces" })),
      "https://tempo:443/v1/traces",
    );
  });

  test("empty variables count as unset; the standard defaults apply", () => {
    const config = configOf({ OTEL_EXPORTER_OTLP_ENDPOINT: "", OTEL_TRACES_SAMPLER: "", OTEL_SDK_DISABLED: "", OTEL_EXPORTER_OTLP_HEADERS: "" });
    assert.equal(config.OTEL_EXPORTER_OTLP_ENDPOINT, undefined);
    assert.equal(config.OTEL_TRACES_SAMPLER, "parentbased_always_on");
    assert.equal(config.OTEL_SDK_DISABLED, false);
    assert.deepEqual(config.OTEL_EXPORTER_OTLP_HEADERS, {});
  });

  test("what the services cannot honour is refused at start, without echoing header values", () => {
    assert.throws(() => configOf({ OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" }), (e: Error) => e instanceof ConfigError && /OTEL_EXPORTER_OTLP_PROTOCOL: only http\/protobuf/.test(e.message));
    assert.throws(() => configOf({ OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" }), (e: Error) => e instanceof ConfigError && /OTEL_EXPORTER_OTLP_ENDPOINT/.test(e.message));
    assert.throws(() => configOf({ OTEL_TRACES_SAMPLER: "sometimes" }), (e: Error) => e instanceof ConfigError && /OTEL_TRACES_SAMPLER/.test(e.message));
    assert.throws(() => configOf({ OTEL_TRACES_SAMPLER_ARG: "2" }), (e: Error) => e instanceof ConfigError && /OTEL_TRACES_SAMPLER_ARG/.test(e.message));
    assert.throws(
      () => configOf({ OTEL_EXPORTER_OTLP_HEADERS: "x-ok=1,Bearer hunter2" }),
      (e: Error) => e instanceof ConfigError && /OTEL_EXPORTER_OTLP_HEADERS: OTLP headers: entry 2 is not key=value/.test(e.message) && !e.message.includes("hunter2"),
    );
    assert.deepEqual(configOf({ OTEL_EXPORTER_OTLP_HEADERS: "a=1, b = x%3Dy " }).OTEL_EXPORTER_OTLP_HEADERS, { a: "1", b: "x=y" });
  });
});
