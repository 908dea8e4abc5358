import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type CallOptions, type Client } from "@connectrpc/connect";
import { Http2SessionManager } from "@connectrpc/connect-node";
import type { Tracer } from "@opentelemetry/api";
import { createServiceTransport, withTraceContext } from "@promptcraft/client";
import type { CallContext } from "./context.js";
import { dependencyUnavailable, type Dependency } from "./errors.js";

/**
 * Request-scoped calls to another PromptCraft service (brief §11): made on behalf of the caller of
 * the current call, so the peer enforces its own rules on the caller's own credentials.
 */

/**
 * Call options for a call to a peer on behalf of `ctx`'s caller: the caller's `authorization`
 * header, its request id and trace context, the call's signal (a cancelled caller cancels the peer
 * call), and a deadline of `maxMs` or less — never past the caller's own deadline, so the caller
 * still has time to answer when the peer does not.
 */
export function onBehalfOf(ctx: CallContext, maxMs: number): CallOptions {
  const authorization = ctx.header("authorization");
  const headers: Record<string, string> = { "x-request-id": ctx.requestId };
  if (authorization !== undefined) headers.authorization = authorization;
  // Keep a fifth of the caller's remaining time for answering it.
  const remaining = ctx.deadline === undefined ? Infinity : Math.floor((ctx.deadline - Date.now()) * 0.8);
  return { headers, signal: ctx.signal, timeoutMs: Math.max(1, Math.min(maxMs, remaining)), ...withTraceContext(ctx.traceContext) };
}

/** Codes of a peer's answer that say "the peer cannot answer now", not "your request is wrong". */
const PEER_DOWN_CODES = new Set([Code.Unavailable, Code.DeadlineExceeded, Code.Unknown, Code.Internal, Code.Unimplemented, Code.ResourceExhausted]);

/**
 * What a failed peer call becomes: UNAVAILABLE DEPENDENCY_UNAVAILABLE (with RetryInfo) naming the
 * peer when it was down, slow, broken or not built yet, never INTERNAL; undefined for the answers the
 * caller must interpret itself (NOT_FOUND, PERMISSION_DENIED, FAILED_PRECONDITION…). A call the
 * caller cancelled (`callerSignal` aborted) stays a cancellation; CANCELED without that is the peer's
 * doing (its process died mid-call and the stream was reset) and counts as the peer being down.
 */
export function peerUnavailable(peer: Dependency, err: unknown, callerSignal: AbortSignal): Error | undefined {
  const connectError = ConnectError.from(err);
  if (connectError.code === Code.Canceled && callerSignal.aborted) return connectError;
  if (!PEER_DOWN_CODES.has(connectError.code) && connectError.code !== Code.Canceled) return undefined;
  return dependencyUnavailable(peer, `${peer} unavailable: ${connectError.rawMessage}`, err);
}

/** A client of a peer service and the HTTP/2 connection it owns. */
export interface PeerClient<S extends DescService> {
  client: Client<S>;
  /** Closes the connection (at shutdown). */
  close(): void;
}

/**
 * A gRPC client of the peer at `url` (a `<PEER>_URL`), traced with `tracer`, on one HTTP/2
 * connection that is dropped after 30 s idle and reopened on the next call. Its calls take
 * {@link onBehalfOf}'s options.
 */
export function peerClient<S extends DescService>(service: S, url: string, tracer?: Tracer): PeerClient<S> {
  const sessionManager = new Http2SessionManager(url, { idleConnectionTimeoutMs: 30_000 });
  const client = createClient(service, createServiceTransport(url, { sessionManager, tracer }));
  return { client, close: () => sessionManager.abort() };
}
