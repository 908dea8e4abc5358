import type { DescMethod, DescService } from "@bufbuild/protobuf";
import type { Context } from "@opentelemetry/api";
import type { Logger } from "pino";

/**
 * Who is calling, once authenticated (filled in by the platform's `authenticate` hook). A `service`
 * caller is another PromptCraft service presenting the deployment's SERVICE_TOKEN, accepted only by
 * the methods registered as `serviceMethods` (usage ingest): it belongs to no tenant (`tenantId` is
 * empty) and names the tenant of each thing it reports.
 */
export interface AuthContext {
  tenantId: string;
  /** Absent for API keys that act as the tenant rather than a user. */
  userId?: string;
  role: "owner" | "admin" | "editor" | "viewer";
  /** Session id (access tokens), key id (API keys), or `service:<name>` (services). */
  credentialId?: string;
  kind: "access_token" | "api_key" | "service";
}

/** The protocol a call arrived on. */
export type Protocol = "grpc" | "connect" | "grpc-web";

/**
 * What a handler knows about its call, the same on both transports. Handlers never see
 * transport objects, so they are written once.
 */
export interface CallContext {
  readonly service: DescService;
  readonly method: DescMethod;
  readonly protocol: Protocol;
  /** The client's `x-request-id`, or one made up for this call; echoed in the response headers. */
  readonly requestId: string;
  /** Aborted when the client cancels or the deadline passes. Pass it to downstream work. */
  readonly signal: AbortSignal;
  /** Absolute deadline in epoch milliseconds, if the client set one. */
  readonly deadline: number | undefined;
  /** Client address (`ip:port`), for per-address throttling. */
  readonly peer: string | undefined;
  /** A request header (gRPC metadata) by lower-case name; the first value if repeated. */
  header(name: string): string | undefined;
  /** Set a response header (sent with the first response message). */
  setResponseHeader(name: string, value: string): void;
  /** The authenticated caller; undefined on public methods and before authentication. */
  auth: AuthContext | undefined;
  /** Logger bound to this call (request id, method; trace and span ids when tracing is on). */
  readonly log: Logger;
  /**
   * The OpenTelemetry context of this call's SERVER span; undefined when tracing is off. Calls to
   * other services pass it on (`withTraceContext(ctx.traceContext)` of `@promptcraft/client`), so
   * that their spans join the caller's trace.
   */
  readonly traceContext: Context | undefined;
}
