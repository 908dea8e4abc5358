import type { DescService } from "@bufbuild/protobuf";
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport, type Http2SessionManager } from "@connectrpc/connect-node";
import type { Tracer } from "@opentelemetry/api";
import { tracingInterceptor } from "./tracing.js";

/** Wire protocol of a client: gRPC (to a service's gRPC port), Connect or gRPC-Web (to its Connect port). */
export type ClientProtocol = "grpc" | "connect" | "grpc-web";

/** Options of {@link createServiceClient}. */
export interface ClientOptions {
  /** `grpc` (default) needs the gRPC port; `connect` and `grpc-web` the Connect port. */
  protocol?: ClientProtocol;
  /** Bearer token (access token or API key) sent as `authorization` on every call. */
  token?: string | (() => string | undefined);
  /** Sent as `x-request-id`; generated per call by the server when absent. */
  requestId?: () => string | undefined;
  /** Default deadline of every call, in milliseconds. */
  timeoutMs?: number;
  /** Extra interceptors (retries…). */
  interceptors?: Interceptor[];
  /**
   * Traces every call (OpenTelemetry): a CLIENT span, and `traceparent` so that the callee's span is
   * its child. The parent comes from the call's options, {@link withTraceContext}. Absent: no tracing
   * work at all.
   */
  tracer?: Tracer;
  /**
   * The HTTP/2 connection of a `grpc` client, when the caller manages it (idle timeout, closing it
   * at shutdown). Default: one made by the transport.
   */
  sessionManager?: Http2SessionManager;
}

/**
 * A typed client of one PromptCraft service, e.g.
 * `createServiceClient(ContentService, "http://127.0.0.1:50052")`.
 * Errors are `ConnectError`s whose `details` carry `google.rpc.ErrorInfo` / `BadRequest`.
 */
export function createServiceClient<S extends DescService>(service: S, baseUrl: string, options: ClientOptions = {}): Client<S> {
  return createClient(service, createServiceTransport(baseUrl, options));
}

/** The transport behind {@link createServiceClient}, for callers that build several clients on it. */
export function createServiceTransport(baseUrl: string, options: ClientOptions = {}): Transport {
  const protocol = options.protocol ?? "grpc";
  const interceptors: Interceptor[] = [
    // Outermost: the span covers the other interceptors too.
    ...(options.tracer ? [tracingInterceptor(options.tracer, { baseUrl, protocol })] : []),
    headersInterceptor(options),
    ...(options.interceptors ?? []),
  ];
  const common = { baseUrl, interceptors, defaultTimeoutMs: options.timeoutMs };
  switch (protocol) {
    case "grpc":
      return createGrpcTransport({ ...common, ...(options.sessionManager ? { sessionManager: options.sessionManager } : {}) });
    case "connect":
      return createConnectTransport({ ...common, httpVersion: "1.1" });
    case "grpc-web":
      return createGrpcWebTransport({ ...common, httpVersion: "1.1" });
  }
}

function headersInterceptor(options: ClientOptions): Interceptor {
  return (next) => (req) => {
    const token = typeof options.token === "function" ? options.token() : options.token;
    if (token) req.header.set("authorization", `Bearer ${token}`);
    const requestId = options.requestId?.();
    if (requestId) req.header.set("x-request-id", requestId);
    return next(req);
  };
}

export { traceContextKey, withTraceContext, tracingInterceptor, statusName, RPC_SYSTEM_CONNECTRPC } from "./tracing.js";
export { ConnectError, Code } from "@connectrpc/connect";
export type { Client } from "@connectrpc/connect";
export { UsageReporter, uuidv7, type UsageEventInit, type UsageReporterOptions, type Counter } from "./usage-reporter.js";
