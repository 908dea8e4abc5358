import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { SpanKind, SpanStatusCode } from "@opentelemetry/api";
import { InMemorySpanExporter, type ReadableSpan } from "@opentelemetry/sdk-trace";
import { pino } from "pino";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { ContentHarness, failure, ok, PROTOCOLS } from "./content-e2e-helpers.js";

/**
 * Issue 10, item 3: one trace spans a content call and the identity call it makes. Content and
 * identity run with in-memory span exporters; the test client sends a W3C `traceparent` of its own
 * (the client's span) over gRPC and over Connect; a content call with an API key makes content
 * introspect the key at identity, the first call with an access token makes it fetch identity's JWK
 * Set. The spans of both services share the client's trace id and chain parent to child: client ->
 * content SERVER -> content CLIENT -> identity SERVER; content's log lines of the call carry the
 * trace and span ids. An outage of identity marks the spans as errors; a client error does not.
 */

const identitySpans = new InMemorySpanExporter();
const contentSpans = new InMemorySpanExporter();
/** Content's log lines, parsed (its root logger writes here at debug level, so successful calls log too). */
const contentLog: Record<string, unknown>[] = [];
const log = pino({ level: "debug", base: { service: "content" } }, { write: (line: string) => void contentLog.push(JSON.parse(line) as Record<string, unknown>) });

const h = new ContentHarness();
/** The last test stops identity. */
let identityStopped = false;
beforeAll(() => h.start({}, { identity: { traceExporter: identitySpans }, content: { traceExporter: contentSpans, log } }));
afterAll(async () => {
  await h.content?.close();
  if (!identityStopped) await h.identity?.close();
});

const M = ContentService.method;
const CONTENT = "promptcraft.content.v1.ContentService";
const AUTH = "promptcraft.identity.v1.AuthService";

/** A client span of the test's own, as W3C trace context: its ids and the `traceparent` header. */
function clientSpan(sampled = true): { traceId: string; spanId: string; traceparent: string } {
  const traceId = randomBytes(16).toString("hex");
  const spanId = randomBytes(8).toString("hex");
  return { traceId, spanId, traceparent: `00-${traceId}-${spanId}-${sampled ? "01" : "00"}` };
}

/** Every span of `traceId` both services have ended, after exporting what is pending. */
async function spansOf(traceId: string): Promise<{ content: ReadableSpan[]; identity: ReadableSpan[] }> {
  await Promise.all([h.content.tracing.flush(), h.identity.tracing.flush()]);
  const of = (exporter: InMemorySpanExporter) => exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
  return { content: of(contentSpans), identity: of(identitySpans) };
}

function only(spans: ReadableSpan[], kind: SpanKind, name: string): ReadableSpan {
  const found = spans.filter((s) => s.kind === kind && s.name === name);
  assert.equal(found.length, 1, `one ${SpanKind[kind]} span ${name}, got ${found.length} of ${spans.map((s) => `${SpanKind[s.kind]} ${s.name}`).join(", ")}`);
  return found[0]!;
}

const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;

/**
 * Asserts the chain client -> content SERVER `method` -> content CLIENT `outgoing` -> identity
 * SERVER `outgoing`, all in the client's trace; returns content's server span.
 */
async function assertChain(client: ReturnType<typeof clientSpan>, method: string, outgoing: string, rpcSystem: string): Promise<ReadableSpan> {
  const { content, identity } = await spansOf(client.traceId);
  const server = only(content, SpanKind.SERVER, `${CONTENT}/${method}`);
  const call = only(content, SpanKind.CLIENT, `${AUTH}/${outgoing}`);
  const remote = only(identity, SpanKind.SERVER, `${AUTH}/${outgoing}`);
  assert.equal(parentOf(server), client.spanId, "content's span continues the client's");
  assert.equal(parentOf(call), server.spanContext().spanId, "the call to identity is a child of content's span");
  assert.equal(parentOf(remote), call.spanContext().spanId, "identity's span is a child of content's call");
  assert.deepEqual([server.attributes["rpc.system.name"], server.attributes["rpc.method"]], [rpcSystem, `${CONTENT}/${method}`]);
  assert.deepEqual([call.attributes["rpc.system.name"], call.attributes["server.address"], call.attributes["server.port"]], ["grpc", "127.0.0.1", h.identity.grpcPort]);
  assert.equal(remote.attributes["rpc.system.name"], "grpc", "content calls identity over gRPC");
  for (const span of [server, call, remote]) {
    assert.equal(span.attributes["rpc.status_code"], "OK", span.name);
    assert.equal(span.status.code, SpanStatusCode.UNSET, span.name);
  }
  assert.equal(server.resource.attributes["service.name"], "promptcraft-content");
  assert.equal(remote.resource.attributes["service.name"], "promptcraft-identity");
  return server;
}

/** Content's log lines of the call with `requestId`. */
const linesOf = (requestId: string) => contentLog.filter((l) => l.requestId === requestId);

describe("one trace across content and identity", () => {
  // First: content has not fetched identity's key set yet, so this call makes it fetch (GetJwks).
  test("an access token's first call fetches identity's JWK Set inside the caller's trace (gRPC)", async () => {
    const t = await h.tenantWith(["viewer"]);
    const client = clientSpan();
    const requestId = randomUUID();
    ok(await h.call("grpc", M.listEntities, {}, t.users[0]!.token, { traceparent: client.traceparent, "x-request-id": requestId }));
    const server = await assertChain(client, "ListEntities", "GetJwks", "grpc");
    assert.equal(server.attributes["promptcraft.request_id"], requestId);
    assert.equal(server.attributes["promptcraft.tenant_id"], t.tenantId);
  });

  for (const protocol of PROTOCOLS) {
    test(`an API key's call introspects it at identity inside the caller's trace (${protocol})`, async () => {
      const t = await h.tenantWith(["owner"]);
      const key = await h.apiKey(t.users[0]!.token, "viewer");
      const client = clientSpan();
      const requestId = randomUUID();
      ok(await h.call(protocol, M.listEntities, {}, key, { traceparent: client.traceparent, "x-request-id": requestId }));

      const server = await assertChain(client, "ListEntities", "IntrospectCredential", protocol === "grpc" ? "grpc" : "connectrpc");
      assert.equal(server.attributes["promptcraft.request_id"], requestId);
      assert.equal(server.attributes["promptcraft.tenant_id"], t.tenantId);
      assert.equal(JSON.stringify(server.attributes).includes(key), false, "no credential on a span");

      // Every log line of the call names its trace and span.
      const lines = linesOf(requestId);
      assert.ok(lines.length > 0, "the call logged (debug)");
      for (const line of lines) {
        assert.equal(line.traceId, client.traceId);
        assert.equal(line.spanId, server.spanContext().spanId);
      }
    });

    test(`a client error is recorded on the span but is not a failed span (${protocol})`, async () => {
      const t = await h.tenantWith(["viewer"]);
      const client = clientSpan();
      const outcome = await h.call(protocol, M.getEntity, { entityId: randomUUID() }, t.users[0]!.token, { traceparent: client.traceparent });
      assert.equal(failure(outcome).code, "NOT_FOUND");
      const { content } = await spansOf(client.traceId);
      const server = only(content, SpanKind.SERVER, `${CONTENT}/GetEntity`);
      assert.equal(server.attributes["rpc.status_code"], "NOT_FOUND");
      assert.equal(server.status.code, SpanStatusCode.UNSET);
      assert.equal(server.attributes["error.type"], undefined);
    });
  }

  test("a caller that did not sample its trace gets no spans, and the call's log lines still carry its trace id", async () => {
    const t = await h.tenantWith(["viewer"]);
    const client = clientSpan(false);
    const requestId = randomUUID();
    ok(await h.call("connect", M.listEntities, {}, t.users[0]!.token, { traceparent: client.traceparent, "x-request-id": requestId }));
    const { content } = await spansOf(client.traceId);
    assert.deepEqual(content, [], "parent-based sampling follows the caller's decision");
    const lines = linesOf(requestId);
    assert.ok(lines.length > 0);
    for (const line of lines) assert.equal(line.traceId, client.traceId);
  });

  test("without a traceparent a call starts a trace of its own; lines outside calls carry no trace fields", async () => {
    const t = await h.tenantWith(["viewer"]);
    const requestId = randomUUID();
    ok(await h.call("grpc", M.listEntities, {}, t.users[0]!.token, { "x-request-id": requestId }));
    await h.content.tracing.flush();
    const server = contentSpans.getFinishedSpans().find((s) => s.attributes["promptcraft.request_id"] === requestId);
    assert.ok(server, "content made a span for the call");
    assert.equal(server.parentSpanContext, undefined, "a root span");
    for (const line of linesOf(requestId)) assert.equal(line.traceId, server.spanContext().traceId);
    const serving = contentLog.find((l) => l.msg === "serving");
    assert.ok(serving);
    assert.equal("traceId" in serving, false);
  });

  // Last: it stops identity.
  test("identity down: content's span and its call to identity are errors (UNAVAILABLE)", async () => {
    const t = await h.tenantWith(["owner"]);
    const key = await h.apiKey(t.users[0]!.token, "viewer");
    identityStopped = true;
    await h.identity.close();
    const client = clientSpan();
    const outcome = await h.call("grpc", M.listEntities, {}, key, { traceparent: client.traceparent });
    assert.equal(failure(outcome).code, "UNAVAILABLE");
    const { content } = await spansOf(client.traceId);
    const server = only(content, SpanKind.SERVER, `${CONTENT}/ListEntities`);
    const call = only(content, SpanKind.CLIENT, `${AUTH}/IntrospectCredential`);
    assert.equal(parentOf(call), server.spanContext().spanId);
    for (const span of [server, call]) {
      assert.equal(span.status.code, SpanStatusCode.ERROR, span.name);
      assert.deepEqual([span.attributes["rpc.status_code"], span.attributes["error.type"]], ["UNAVAILABLE", "UNAVAILABLE"], span.name);
    }
  });
});
