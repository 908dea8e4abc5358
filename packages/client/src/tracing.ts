import { ConnectError, createContextKey, createContextValues, type CallOptions, type Interceptor, type StreamResponse } from "@connectrpc/connect";
import { context as otelContext, SpanKind, SpanStatusCode, trace, type Context, type Span, type TextMapSetter, type Tracer } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { ATTR_ERROR_TYPE, ATTR_RPC_METHOD, ATTR_RPC_STATUS_CODE, ATTR_RPC_SYSTEM_NAME, ATTR_SERVER_ADDRESS, ATTR_SERVER_PORT } from "@opentelemetry/semantic-conventions";

/**
 * Tracing of outgoing calls (OpenTelemetry): a CLIENT span per call, and the W3C `traceparent` /
 * `tracestate` headers that make the callee's span a child of it.
 *
 * The parent of the span is passed explicitly, in the call's `contextValues` under
 * {@link traceContextKey} (see {@link withTraceContext}): the services register no global context
 * manager, because on Node 20 the AsyncLocalStorage one slows every promise of the process
 * (docs/decisions.md). Without one, a caller that has its own context manager gets its active
 * context as the parent.
 */

/** The OpenTelemetry context whose span is the parent of an outgoing call's span. */
export const traceContextKey = createContextKey<Context | undefined>(undefined, { description: "OpenTelemetry parent context of the call" });

/**
 * Call options that make `traceContext` (a server span's context, e.g. `ctx.traceContext`) the parent
 * of the call's span: `client.getJwks({}, withTraceContext(ctx.traceContext))`. Empty when undefined.
 */
export function withTraceContext(traceContext: Context | undefined): Pick<CallOptions, "contextValues"> {
  return traceContext === undefined ? {} : { contextValues: createContextValues().set(traceContextKey, traceContext) };
}

/** `rpc.system.name` of the Connect protocol (an incubating value of the semantic conventions). */
export const RPC_SYSTEM_CONNECTRPC = "connectrpc";

/** The canonical gRPC status names, by code (connect-es's `Code` numbers are gRPC's). */
const STATUS_NAMES = [
  "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
  "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
  "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
] as const;

/** A status code's canonical gRPC name (`rpc.status_code`): `OK` (0), `INVALID_ARGUMENT` (3), … */
export function statusName(code: number): string {
  return STATUS_NAMES[code] ?? String(code);
}

const propagator = new W3CTraceContextPropagator();
const headerSetter: TextMapSetter<Headers> = { set: (headers, key, value) => headers.set(key, value) };

/**
 * The interceptor behind {@link ClientOptions.tracer}: a CLIENT span named `package.Service/Method`
 * with the RPC semantic conventions' attributes, `traceparent` injected into the request. Any status
 * but OK marks the span as an error (the conventions' rule for client spans).
 */
export function tracingInterceptor(tracer: Tracer, target: { baseUrl: string; protocol: "grpc" | "connect" | "grpc-web" }): Interceptor {
  const url = new URL(target.baseUrl);
  const common = {
    [ATTR_RPC_SYSTEM_NAME]: target.protocol === "connect" ? RPC_SYSTEM_CONNECTRPC : "grpc",
    [ATTR_SERVER_ADDRESS]: url.hostname,
    [ATTR_SERVER_PORT]: Number(url.port || (url.protocol === "https:" ? 443 : 80)),
  };
  return (next) => async (req) => {
    const parent = req.contextValues.get(traceContextKey) ?? otelContext.active();
    const method = `${req.service.typeName}/${req.method.name}`;
    const span = tracer.startSpan(method, { kind: SpanKind.CLIENT, attributes: { ...common, [ATTR_RPC_METHOD]: method } }, parent);
    propagator.inject(trace.setSpan(parent, span), req.header, headerSetter);
    let res;
    try {
      res = await next(req);
    } catch (err) {
      endClientSpan(span, err);
      throw err;
    }
    if (!res.stream) {
      endClientSpan(span, undefined);
      return res;
    }
    // A stream's outcome is known when its last message has been read.
    return { ...res, message: endAfter(res.message, span) } satisfies StreamResponse;
  };
}

async function* endAfter<T>(messages: AsyncIterable<T>, span: Span): AsyncGenerator<T> {
  let failure: unknown;
  try {
    yield* messages;
  } catch (err) {
    failure = err;
    throw err;
  } finally {
    endClientSpan(span, failure);
  }
}

function endClientSpan(span: Span, err: unknown): void {
  if (err === undefined) {
    span.setAttribute(ATTR_RPC_STATUS_CODE, "OK");
  } else {
    const error = ConnectError.from(err);
    const name = statusName(error.code);
    span.setAttributes({ [ATTR_RPC_STATUS_CODE]: name, [ATTR_ERROR_TYPE]: name });
    span.setStatus({ code: SpanStatusCode.ERROR, message: error.rawMessage });
  }
  span.end();
}
