import { create, isMessage, type DescMessage, type DescMethod, type Message } from "@bufbuild/protobuf";
import { pathToString } from "@bufbuild/protobuf/reflect";
import { Code, ConnectError } from "@connectrpc/connect";
import { createValidator, type Validator } from "@bufbuild/protovalidate";
import { randomUUID } from "node:crypto";
import type { Context, Span, Tracer } from "@opentelemetry/api";
import type { Logger } from "pino";
import type { AuthContext, CallContext, Protocol } from "./context.js";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import { AppError, InvalidArgumentError, toConnectError, UnimplementedError, type Dependency } from "./errors.js";
import type { AnyHandler, RequestValidator, ServiceRegistration } from "./handlers.js";
import { briefError, LogThrottle } from "./log-throttle.js";
import type { RpcMetrics } from "./metrics.js";
import { ATTR_TENANT_ID, endServerSpan, startServerSpan } from "./tracing.js";

/** A request message, or a function that decodes it (and throws if it is malformed). */
export type RequestInput = Message | (() => Message);

/** Hooks the platform's owner supplies; authentication arrives with the identity service. */
export interface PipelineOptions {
  log: Logger;
  metrics: RpcMetrics;
  /**
   * Verifies the caller's credentials for a non-public method and returns who they are, or
   * throws UnauthenticatedError. Runs before the UNIMPLEMENTED check and before the request is
   * decoded. Absent: calls stay anonymous (`ctx.auth` undefined).
   */
  authenticate?: (ctx: CallContext) => Promise<AuthContext | undefined>;
  /** Told about every call that failed because `dependency` was unreachable (the database watcher listens). */
  onDependencyUnavailable?: (dependency: Dependency) => void;
  /** Makes a SERVER span per call when given (tracing on); absent, calls cost no tracing work at all. */
  tracer?: Tracer;
  /**
   * Aborts when the server's grace period is over: every call's {@link CallContext.signal} aborts
   * with its reason (UNAVAILABLE, SHUTTING_DOWN), so that calls still running stop their work and
   * answer that — rather than being cut off by the transport (CANCELLED, or a broken stream).
   */
  stopping?: AbortSignal;
}

/**
 * What a transport supplies about an incoming call. Implemented as a class per transport so that
 * the per-call cost stays at one object; the signal is made only if a handler asks for it.
 */
export interface TransportCall {
  readonly protocol: Protocol;
  /** Absolute deadline in epoch milliseconds, if the client set one. */
  readonly deadline: number | undefined;
  readonly peer: string | undefined;
  header(name: string): string | undefined;
  setResponseHeader(name: string, value: string): void;
  /** Aborts when the client cancels or the deadline passes; created on first use. */
  signal(): AbortSignal;
}

/**
 * The handler-facing context of one call, the same on both transports, plus what the pipeline keeps
 * about the call (its span). Made by {@link Pipeline.context}.
 */
export class PipelineCall implements CallContext {
  auth: AuthContext | undefined = undefined;
  traceContext: Context | undefined = undefined;
  /** The call's SERVER span while it is open (tracing on). */
  private span: Span | undefined;
  private ids: { traceId: string; spanId: string } | undefined;
  private id: string | undefined;
  private logger: Logger | undefined;
  private stoppable: AbortSignal | undefined;

  constructor(
    readonly service: ServiceRegistration["service"],
    readonly method: DescMethod,
    private readonly transport: TransportCall,
    private readonly rootLog: Logger,
    private readonly stopping?: AbortSignal,
  ) {}

  get protocol(): Protocol {
    return this.transport.protocol;
  }
  get deadline(): number | undefined {
    return this.transport.deadline;
  }
  get peer(): string | undefined {
    return this.transport.peer;
  }
  /** Aborts when the client cancels, the deadline passes, or the server's grace period ends; made on first use. */
  get signal(): AbortSignal {
    if (this.stoppable) return this.stoppable;
    const own = this.transport.signal();
    const stopping = this.stopping;
    if (!stopping) return (this.stoppable = own);
    // Not AbortSignal.any: the combined signal must stay alive as long as the call does (Node 20's
    // composite signals are held weakly by their sources), and the server-wide signal must not
    // collect one listener per call: release() removes it when the call ends.
    const combined = new AbortController();
    const onStop = () => combined.abort(stopping.reason);
    const onOwn = () => combined.abort(own.reason);
    if (own.aborted) onOwn();
    else if (stopping.aborted) onStop();
    else {
      own.addEventListener("abort", onOwn, { once: true });
      stopping.addEventListener("abort", onStop, { once: true });
      this.release = () => stopping.removeEventListener("abort", onStop);
    }
    return (this.stoppable = combined.signal);
  }
  /** Called when the call has its outcome: detaches it from the server-wide stopping signal. */
  release: () => void = noop;
  /** The client's `x-request-id` if it sent a sane one, else a fresh UUID (made on first use). */
  get requestId(): string {
    return (this.id ??= sanitizeRequestId(this.transport.header("x-request-id")) ?? randomUUID());
  }
  // A child logger per call costs more than a trivial call itself: made on first use.
  get log(): Logger {
    return (this.logger ??= this.rootLog.child({ requestId: this.requestId, rpc: `${this.service.typeName}/${this.method.name}`, ...this.traceIds() }));
  }
  /** `traceId` and `spanId` of the call's span, for its log lines (also after it ended); none when tracing is off. */
  traceIds(): { traceId?: string; spanId?: string } {
    return this.ids ?? {};
  }
  /** Opens the call's SERVER span, the child of the caller's when it sent `traceparent`. */
  startSpan(tracer: Tracer): void {
    const started = startServerSpan(tracer, this.transport, `${this.service.typeName}/${this.method.name}`, this.protocol, this.requestId);
    this.span = started.span;
    this.traceContext = started.context;
    const { traceId, spanId } = started.span.spanContext();
    this.ids = { traceId, spanId };
  }
  /** Ends the call's span with its status (once; later calls do nothing). */
  endSpan(code: Code | 0, message?: string, err?: unknown): void {
    const span = this.span;
    if (!span) return;
    this.span = undefined;
    if (this.auth) span.setAttribute(ATTR_TENANT_ID, this.auth.tenantId);
    endServerSpan(span, code, message, err);
  }
  header(name: string): string | undefined {
    return this.transport.header(name);
  }
  setResponseHeader(name: string, value: string): void {
    this.transport.setResponseHeader(name, value);
  }
}

const codeName = (code: Code): string => Code[code];
const noop = (): void => {};

/**
 * The one pipeline behind both transports: request id, deadline check, unimplemented methods,
 * authentication, validation of every request message, the handler, error mapping, logging and
 * metrics. Transports decode, call one of the `run*` methods, and encode.
 */
export class Pipeline {
  private readonly validator: Validator = createValidator();
  /** Calls failing on an unreachable dependency are logged once per window, not once each. */
  private readonly quiet: LogThrottle;

  constructor(private readonly options: PipelineOptions) {
    this.quiet = new LogThrottle(options.log);
  }

  /** Writes the pending summaries of repeated failures (shutdown). */
  flushLogs(): void {
    this.quiet.flush();
  }

  /** Makes the handler-facing context of a call (and, tracing on, opens its span). */
  context(registration: ServiceRegistration, method: DescMethod, transport: TransportCall): PipelineCall {
    const call = new PipelineCall(registration.service, method, transport, this.options.log, this.options.stopping);
    if (this.options.tracer && !registration.untraced) call.startSpan(this.options.tracer);
    return call;
  }

  /**
   * A unary call. The request may be given as a function that decodes it, so that a malformed
   * message fails inside the pipeline (INVALID_ARGUMENT, logged and counted like any failure).
   */
  async runUnary(ctx: PipelineCall, input: RequestInput): Promise<Message> {
    const started = performance.now();
    echoSuppliedRequestId(ctx);
    try {
      if (this.mustAuthenticate(ctx)) await this.authenticate(ctx);
      const handler = this.admit(ctx);
      const request = typeof input === "function" ? input() : input;
      this.validate(ctx.method, request);
      const response = toMessage(ctx.method.output, await handler(request, ctx));
      this.finish(ctx, started);
      return response;
    } catch (err) {
      throw this.fail(ctx, started, err);
    }
  }

  /** A server-streaming call: the handler's messages, validated request first. */
  async *runServerStream(ctx: PipelineCall, input: RequestInput): AsyncGenerator<Message> {
    const started = performance.now();
    echoSuppliedRequestId(ctx);
    try {
      if (this.mustAuthenticate(ctx)) await this.authenticate(ctx);
      const handler = this.admit(ctx);
      const request = typeof input === "function" ? input() : input;
      this.validate(ctx.method, request);
      for await (const out of handler(request, ctx) as AsyncIterable<unknown>) {
        yield toMessage(ctx.method.output, out);
      }
      this.finish(ctx, started);
    } catch (err) {
      throw this.fail(ctx, started, err);
    } finally {
      // A stream the transport stopped reading (the client went away) ends here, unfinished.
      ctx.endSpan(Code.Canceled);
    }
  }

  /** A client-streaming call: every incoming message is validated as it arrives. */
  async runClientStream(ctx: PipelineCall, requests: AsyncIterable<Message>): Promise<Message> {
    const started = performance.now();
    echoSuppliedRequestId(ctx);
    try {
      if (this.mustAuthenticate(ctx)) await this.authenticate(ctx);
      const handler = this.admit(ctx);
      const response = toMessage(ctx.method.output, await handler(this.validated(ctx, requests), ctx));
      this.finish(ctx, started);
      return response;
    } catch (err) {
      throw this.fail(ctx, started, err);
    }
  }

  /** A bidirectional call. */
  async *runBidiStream(ctx: PipelineCall, requests: AsyncIterable<Message>): AsyncGenerator<Message> {
    const started = performance.now();
    echoSuppliedRequestId(ctx);
    try {
      if (this.mustAuthenticate(ctx)) await this.authenticate(ctx);
      const handler = this.admit(ctx);
      for await (const out of handler(this.validated(ctx, requests), ctx) as AsyncIterable<unknown>) {
        yield toMessage(ctx.method.output, out);
      }
      this.finish(ctx, started);
    } catch (err) {
      throw this.fail(ctx, started, err);
    } finally {
      ctx.endSpan(Code.Canceled);
    }
  }

  /**
   * Whether the call needs credentials (precomputed per method), checking first that its deadline
   * has not passed: the deadline, then authentication, then whether the method is built. An
   * anonymous caller of a non-public method gets UNAUTHENTICATED whether or not it is built yet.
   */
  private mustAuthenticate(ctx: CallContext): boolean {
    if (ctx.deadline !== undefined && Date.now() >= ctx.deadline) {
      throw new ConnectError("deadline exceeded before the call started", Code.DeadlineExceeded);
    }
    return this.options.authenticate !== undefined && !this.publicMethods.has(ctx.method);
  }

  /** Is the method built? */
  private admit(ctx: CallContext): AnyHandler {
    const handler = this.handlerOf(ctx);
    if (!handler) {
      throw new UnimplementedError(`${ctx.method.parent.typeName}.${ctx.method.name} is not implemented yet`, {
        reason: ErrorReason.METHOD_NOT_IMPLEMENTED,
        metadata: { method: `${ctx.method.parent.typeName}/${ctx.method.name}` },
      });
    }
    return handler;
  }

  private async authenticate(ctx: CallContext): Promise<void> {
    ctx.auth = await this.options.authenticate!(ctx);
  }

  private readonly registrations = new Map<string, ServiceRegistration>();
  /** Methods that skip authentication, by descriptor: one set lookup per call. */
  private readonly publicMethods = new Set<DescMethod>();

  /** Methods whose requests a hand-written check validates instead of protovalidate (see ServiceRegistration.validators). */
  private readonly ownValidators = new Map<DescMethod, RequestValidator>();

  /** Tells the pipeline which registration serves which service (the transports do this). */
  register(registration: ServiceRegistration): void {
    this.registrations.set(registration.service.typeName, registration);
    for (const method of registration.service.methods) {
      if (registration.public || registration.publicMethods?.has(method.localName)) this.publicMethods.add(method);
      const own = registration.validators?.[method.localName];
      if (own) this.ownValidators.set(method, own);
    }
  }

  private handlerOf(ctx: CallContext): AnyHandler | undefined {
    return this.registrations.get(ctx.service.typeName)?.handlers[ctx.method.localName];
  }

  private validate(method: DescMethod, message: Message): void {
    const own = this.ownValidators.get(method);
    if (own) {
      const violations = own(message);
      if (violations.length > 0) throw new InvalidArgumentError(violations, { reason: ErrorReason.INVALID_REQUEST });
      return;
    }
    const result = this.validator.validate(method.input, message);
    if (result.kind === "valid") return;
    if (result.kind === "invalid") {
      throw new InvalidArgumentError(
        result.violations.map((v) => ({ field: pathToString(v.field), description: v.message, reason: v.ruleId })),
        { reason: ErrorReason.INVALID_REQUEST },
      );
    }
    // A rule that cannot be compiled or evaluated is our bug, not the caller's.
    throw result.error;
  }

  private async *validated(ctx: PipelineCall, requests: AsyncIterable<Message>): AsyncGenerator<Message> {
    for await (const request of requests) {
      this.validate(ctx.method, request);
      yield request;
    }
  }

  private finish(ctx: PipelineCall, started: number): void {
    ctx.release();
    ctx.endSpan(0);
    const seconds = (performance.now() - started) / 1000;
    this.options.metrics.observe(ctx.service.typeName, ctx.method.name, ctx.method.methodKind, "OK", ctx.protocol, seconds);
    if (this.options.log.isLevelEnabled("debug")) {
      ctx.log.debug({ code: "OK", ms: seconds * 1000, protocol: ctx.protocol }, "rpc");
    }
  }

  private fail(ctx: PipelineCall, started: number, err: unknown): ConnectError {
    ctx.release();
    const { error, internal, dependency } = toConnectError(isAbortError(err) ? new ConnectError("the call was cancelled", Code.Canceled) : err, ctx.requestId);
    // The cause of an unexpected failure goes on the span too (where only operators read it, as in the log).
    ctx.endSpan(error.code, error.rawMessage, internal ? err : undefined);
    // A failed call always tells the client its request id (with the status, where gRPC clients
    // read error metadata), so a report can name it.
    error.metadata.set("x-request-id", ctx.requestId);
    const seconds = (performance.now() - started) / 1000;
    const code = codeName(error.code);
    this.options.metrics.observe(ctx.service.typeName, ctx.method.name, ctx.method.methodKind, code, ctx.protocol, seconds);
    if (internal) {
      ctx.log.error({ code, ms: seconds * 1000, protocol: ctx.protocol, err }, "rpc failed");
    } else if (dependency) {
      this.options.onDependencyUnavailable?.(dependency);
      this.quiet.write(
        "warn",
        `unavailable:${dependency}`,
        { code, dependency, requestId: ctx.requestId, ...ctx.traceIds(), rpc: `${ctx.service.typeName}/${ctx.method.name}`, error: briefError(err instanceof AppError ? (err.cause ?? err) : err) },
        `calls fail: ${dependency} unavailable`,
      );
    } else {
      ctx.log.info({ code, ms: seconds * 1000, protocol: ctx.protocol, reason: error.rawMessage }, "rpc");
    }
    return error;
  }
}

/**
 * Echo a client-supplied `x-request-id` on success too. Ids we make up are only sent with errors
 * (and logged): setting a header on every call would cost the gRPC path a metadata frame.
 */
function echoSuppliedRequestId(ctx: CallContext): void {
  if (ctx.header("x-request-id") !== undefined) ctx.setResponseHeader("x-request-id", ctx.requestId);
}

/** A signal's reason without one of ours (connect-node aborts a call whose HTTP/1.1 connection closed with a plain AbortError). */
function isAbortError(err: unknown): boolean {
  return err instanceof Error && err.name === "AbortError";
}

function toMessage(schema: DescMessage, value: unknown): Message {
  return isMessage(value, schema) ? value : create(schema, value as never);
}

// Request ids are echoed into logs and headers: accept only a sane token, never arbitrary bytes.
function sanitizeRequestId(value: string | undefined): string | undefined {
  return value && /^[\w.:-]{1,128}$/.test(value) ? value : undefined;
}
