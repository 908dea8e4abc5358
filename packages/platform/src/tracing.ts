import { randomUUID } from "node:crypto";
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type Span, type TextMapGetter, type Tracer } from "@opentelemetry/api";
import { ExportResultCode, W3CTraceContextPropagator, type ExportResult } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { defaultResource, resourceFromAttributes } from "@opentelemetry/resources";
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  TracerProvider,
  type ReadableSpan,
  type Sampler,
  type SpanExporter,
} from "@opentelemetry/sdk-trace";
import { ATTR_ERROR_TYPE, ATTR_RPC_METHOD, ATTR_RPC_STATUS_CODE, ATTR_RPC_SYSTEM_NAME, ATTR_SERVICE_INSTANCE_ID, ATTR_SERVICE_NAME } from "@opentelemetry/semantic-conventions";
import { RPC_SYSTEM_CONNECTRPC, statusName } from "@promptcraft/client";
import type { Logger } from "pino";
import type { TracesSampler } from "./config.js";
import type { Protocol } from "./context.js";
import { briefError, LogThrottle } from "./log-throttle.js";

/**
 * Distributed tracing (OpenTelemetry), off unless an OTLP endpoint is configured.
 *
 * Spans are made by hand where the platform already holds the call — a SERVER span per RPC in the
 * pipeline (both transports), a CLIENT span per outgoing call in `@promptcraft/client` — rather than
 * by auto-instrumentation of http2 / grpc-js, which would add a second span per call on the same
 * port and patch modules the platform does not need patched. The context travels explicitly
 * (`ctx.traceContext`), not through a global AsyncLocalStorage context manager: on Node 20 an active
 * AsyncLocalStorage slows every promise of the process (docs/decisions.md). Nothing is registered
 * globally, so two services in one process (the e2e tests) keep their own providers.
 */

/** The tracing settings of a service's config (see `baseConfigShape`). */
export interface TracingConfig {
  OTEL_SDK_DISABLED: boolean;
  OTEL_EXPORTER_OTLP_ENDPOINT?: string | undefined;
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?: string | undefined;
  OTEL_EXPORTER_OTLP_HEADERS: Record<string, string>;
  OTEL_SERVICE_NAME?: string | undefined;
  OTEL_RESOURCE_ATTRIBUTES: Record<string, string>;
  OTEL_TRACES_SAMPLER: TracesSampler;
  OTEL_TRACES_SAMPLER_ARG?: number | undefined;
}

/** A service's tracing: a tracer when on, nothing when off. */
export interface Tracing {
  /** Undefined when tracing is off: then no span, no header and no trace field is ever made. */
  readonly tracer: Tracer | undefined;
  /** Exports the spans that ended so far (tests, before reading an in-memory exporter). */
  flush(): Promise<void>;
  /** Exports what is pending and stops, giving up after `timeoutMs` (shutdown). */
  shutdown(timeoutMs: number): Promise<void>;
}

const OFF: Tracing = { tracer: undefined, flush: async () => undefined, shutdown: async () => undefined };

/** Where spans go: the OTLP/HTTP traces URL, or undefined when no endpoint is configured. */
export function tracesUrl(config: Pick<TracingConfig, "OTEL_EXPORTER_OTLP_ENDPOINT" | "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT">): string | undefined {
  if (config.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) return config.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  // The base endpoint gets the signal's path appended (the OTLP exporter specification).
  if (config.OTEL_EXPORTER_OTLP_ENDPOINT) return `${config.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, "")}/v1/traces`;
  return undefined;
}

/**
 * Starts a service's tracing: with an OTLP endpoint configured (or an `exporter` given, which tests
 * do), a tracer provider of its own exporting in batches; otherwise {@link Tracing} with no tracer.
 * Export failures are logged through `log`, once per window.
 */
export function startTracing(options: { config: TracingConfig; service: string; log: Logger; exporter?: SpanExporter }): Tracing {
  const { config } = options;
  const url = tracesUrl(config);
  if (config.OTEL_SDK_DISABLED || (options.exporter === undefined && url === undefined)) return OFF;
  const exporter = new LoggingExporter(options.exporter ?? new OTLPTraceExporter({ url, headers: config.OTEL_EXPORTER_OTLP_HEADERS }), new LogThrottle(options.log));
  const serviceName = config.OTEL_SERVICE_NAME ?? config.OTEL_RESOURCE_ATTRIBUTES[ATTR_SERVICE_NAME] ?? `promptcraft-${options.service}`;
  const provider = new TracerProvider({
    resource: defaultResource().merge(
      resourceFromAttributes({ ...config.OTEL_RESOURCE_ATTRIBUTES, [ATTR_SERVICE_NAME]: serviceName, [ATTR_SERVICE_INSTANCE_ID]: randomUUID() }),
    ),
    sampler: sampler(config.OTEL_TRACES_SAMPLER, config.OTEL_TRACES_SAMPLER_ARG ?? 1),
    spanProcessors: [new BatchSpanProcessor({ exporter })],
  });
  options.log.info({ traces: url === undefined ? "(in-process exporter)" : withoutCredentials(url), serviceName, sampler: config.OTEL_TRACES_SAMPLER }, "tracing on");
  return {
    tracer: provider.getTracer("@promptcraft/platform"),
    flush: () => provider.forceFlush(),
    async shutdown(timeoutMs) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        provider.shutdown().catch((err: unknown) => options.log.warn({ error: briefError(err) }, "tracing: shutdown failed")),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs).unref())),
      ]);
      clearTimeout(timer);
    },
  };
}

/** A URL fit for a log line: no user or password. */
function withoutCredentials(url: string): string {
  const u = new URL(url);
  u.username = "";
  u.password = "";
  return u.toString();
}

function sampler(name: TracesSampler, ratio: number): Sampler {
  switch (name) {
    case "always_on":
      return new AlwaysOnSampler();
    case "always_off":
      return new AlwaysOffSampler();
    case "traceidratio":
      return new TraceIdRatioBasedSampler(ratio);
    case "parentbased_always_on":
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case "parentbased_always_off":
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case "parentbased_traceidratio":
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
  }
}

/** An exporter that reports failed exports in the service's log (the SDK would tell only its `diag` logger, silent by default). */
class LoggingExporter implements SpanExporter {
  constructor(
    private readonly inner: SpanExporter,
    private readonly quiet: LogThrottle,
  ) {}
  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.inner.export(spans, (result) => {
      if (result.code !== ExportResultCode.SUCCESS) {
        this.quiet.write("warn", "otlp", { spans: spans.length, error: briefError(result.error) }, "tracing: span export failed");
      }
      done(result);
    });
  }
  async shutdown(): Promise<void> {
    await this.inner.shutdown();
    this.quiet.flush();
  }
  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}

const propagator = new W3CTraceContextPropagator();
const headerGetter: TextMapGetter<{ header(name: string): string | undefined }> = {
  get: (carrier, key) => carrier.header(key),
  keys: () => [],
};

/** `promptcraft.request_id`: the call's request id on its span (no semantic convention names one). */
export const ATTR_REQUEST_ID = "promptcraft.request_id";
/** `promptcraft.tenant_id`: the authenticated caller's tenant. */
export const ATTR_TENANT_ID = "promptcraft.tenant_id";

/**
 * Starts the SERVER span of an incoming call, the child of the caller's span when the call carries a
 * W3C `traceparent` (gRPC metadata or HTTP header alike). Returns the span and the context to pass to
 * outgoing calls.
 */
export function startServerSpan(
  tracer: Tracer,
  call: { header(name: string): string | undefined },
  method: string,
  protocol: Protocol,
  requestId: string,
): { span: Span; context: Context } {
  const parent = propagator.extract(ROOT_CONTEXT, call, headerGetter);
  const span = tracer.startSpan(
    method,
    {
      kind: SpanKind.SERVER,
      attributes: {
        [ATTR_RPC_SYSTEM_NAME]: protocol === "connect" ? RPC_SYSTEM_CONNECTRPC : "grpc",
        [ATTR_RPC_METHOD]: method,
        [ATTR_REQUEST_ID]: requestId,
      },
    },
    parent,
  );
  return { span, context: trace.setSpan(parent, span) };
}

/**
 * Codes that are the server's fault: its span's status is ERROR. A client's mistake (INVALID_ARGUMENT,
 * NOT_FOUND, UNAUTHENTICATED…) is a correct answer, not a failed span (the gRPC semantic conventions'
 * table for server spans).
 */
const SERVER_FAULTS = new Set(["UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"]);

/** Ends a SERVER span with the call's status code; `err` (an unexpected failure's cause) is recorded as an exception event. */
export function endServerSpan(span: Span, code: number, message?: string, err?: unknown): void {
  const name = statusName(code);
  span.setAttribute(ATTR_RPC_STATUS_CODE, name);
  if (SERVER_FAULTS.has(name)) {
    span.setAttribute(ATTR_ERROR_TYPE, name);
    span.setStatus({ code: SpanStatusCode.ERROR, ...(message ? { message } : {}) });
    if (err instanceof Error) span.recordException(err);
  }
  span.end();
}
