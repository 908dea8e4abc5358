import { setMaxListeners } from "node:events";
import * as grpc from "@grpc/grpc-js";
import type { Tracer } from "@opentelemetry/api";
import type { Logger } from "pino";
import type { AuthContext, CallContext } from "./context.js";
import { connectHandler, listenDualProtocol, type HttpRoute } from "./connect-transport.js";
import { withCors, type CorsOptions } from "./cors.js";
import { addGrpcService } from "./grpc-transport.js";
import type { ServiceRegistration } from "./handlers.js";
import { HealthState, ServingStatus } from "./health.js";
import { RpcMetrics } from "./metrics.js";
import { Pipeline, type PipelineOptions } from "./pipeline.js";
import { reflectionRegistrations } from "./reflection.js";
import { DEPENDENCY_RETRY_DELAY_MS, UnavailableError } from "./errors.js";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";

/** What {@link startServer} needs. */
export interface ServerOptions {
  /** Short service name (`content`), used in logs and metrics. */
  name: string;
  host: string;
  /** gRPC port (grpc-js); 0 picks a free port. */
  grpcPort: number;
  /** Connect + gRPC-Web port (connect-node, HTTP/1.1 and h2c); 0 picks a free port. */
  connectPort: number;
  /** The service's own RPC services. Health and reflection are added by the platform. */
  services: readonly ServiceRegistration[];
  log: Logger;
  /** Credential check for non-public methods; see {@link PipelineOptions.authenticate}. */
  authenticate?: (ctx: CallContext) => Promise<AuthContext | undefined>;
  /** Extra plain HTTP routes on the Connect port, by exact path. */
  httpRoutes?: Record<string, HttpRoute>;
  /** Which web origins may call the Connect port from a browser; default: none. */
  cors?: CorsOptions;
  /** How long {@link RunningServer.close} waits for in-flight calls. */
  shutdownGraceMs?: number;
  /** See {@link PipelineOptions.onDependencyUnavailable}. */
  onDependencyUnavailable?: PipelineOptions["onDependencyUnavailable"];
  /** A SERVER span per call (see {@link PipelineOptions.tracer}); absent: tracing off. */
  tracer?: Tracer;
}

/** A started server. */
export interface RunningServer {
  readonly grpcPort: number;
  readonly connectPort: number;
  readonly health: HealthState;
  readonly metrics: RpcMetrics;
  /**
   * Graceful shutdown: reports NOT_SERVING, stops accepting calls, waits up to the grace period
   * for in-flight calls on both transports, then stops what is left: their `ctx.signal` aborts with
   * UNAVAILABLE (SHUTTING_DOWN), which stops their database work, and they have 1 s to send that
   * answer before the connections are cut. Resolves when both transports are closed; handlers of
   * cut calls may still be unwinding.
   */
  close(): Promise<void>;
}

/**
 * Serves `services` plus `grpc.health.v1` and server reflection on both transports, through one
 * pipeline. Resolves once both ports listen.
 */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const metrics = new RpcMetrics(options.name);
  const health = new HealthState();
  const stopping = new AbortController();
  // Every running call that touches the database listens to it (removed when the call ends): as
  // many listeners as calls in flight, which is not a leak.
  setMaxListeners(0, stopping.signal);
  const pipeline = new Pipeline({
    log: options.log,
    metrics,
    authenticate: options.authenticate,
    onDependencyUnavailable: options.onDependencyUnavailable,
    tracer: options.tracer,
    stopping: stopping.signal,
  });
  const own = [...options.services, health.registration()];
  const registrations = [...own, ...reflectionRegistrations(own.map((r) => r.service))];
  registrations.forEach((r) => pipeline.register(r));

  const grpcServer = new grpc.Server({
    "grpc.max_receive_message_length": 16 * 1024 * 1024,
    // Answer keepalive pings from long-lived clients (streams, pooled channels) instead of GOAWAY.
    "grpc.keepalive_permit_without_calls": 1,
    "grpc.http2.min_ping_interval_without_data_ms": 10_000,
  });
  registrations.forEach((r) => addGrpcService(grpcServer, r, pipeline));
  const grpcPort = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync(`${options.host}:${options.grpcPort}`, grpc.ServerCredentials.createInsecure(), (err, port) =>
      err ? reject(portError(err, options.grpcPort, "GRPC_PORT")) : resolve(port),
    ),
  );

  let closing = false;
  const routes: Record<string, HttpRoute> = {
    "/metrics": (_req, res) => {
      metrics.registry.metrics().then(
        (text) => {
          res.writeHead(200, { "content-type": metrics.registry.contentType });
          res.end(text);
        },
        () => {
          res.writeHead(500);
          res.end();
        },
      );
    },
    // Liveness, for probes and load balancers that speak plain HTTP only: the process runs and is
    // not shutting down. Deliberately not the database's state (that is readiness, grpc.health.v1):
    // a database outage must not get every replica restarted.
    "/healthz": (_req, res) => {
      res.writeHead(closing ? 503 : 200, { "content-type": "text/plain; charset=utf-8" });
      res.end(closing ? "shutting down\n" : "ok\n");
    },
    ...options.httpRoutes,
  };
  let connect;
  try {
    const handler = withCors(connectHandler(registrations, pipeline, routes), options.cors ?? { allowedOrigins: [], maxAgeSeconds: 0 });
    connect = await listenDualProtocol(handler, options.host, options.connectPort);
  } catch (err) {
    grpcServer.forceShutdown();
    throw portError(err as Error, options.connectPort, "CONNECT_PORT");
  }

  health.set("", ServingStatus.SERVING);
  for (const r of registrations) health.set(r.service.typeName, ServingStatus.SERVING);
  options.log.info({ grpcPort, connectPort: connect.port, host: options.host }, "serving");

  const graceMs = options.shutdownGraceMs ?? 10_000;
  return {
    grpcPort,
    connectPort: connect.port,
    health,
    metrics,
    async close() {
      if (closing) return;
      closing = true;
      health.setAll(ServingStatus.NOT_SERVING);
      // At the end of the grace period, calls still running are stopped first (their signal aborts
      // with SHUTTING_DOWN: database work cancelled and rolled back) and get STOP_ANSWER_MS to send
      // that answer; only then are the connections cut.
      const stop = setTimeout(() => {
        options.log.warn("grace period over: stopping in-flight calls (UNAVAILABLE, SHUTTING_DOWN)");
        stopping.abort(shuttingDown());
      }, graceMs);
      stop.unref();
      const grpcDrained = new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          options.log.warn("in-flight gRPC calls did not answer: cancelling them");
          grpcServer.forceShutdown();
          resolve();
        }, graceMs + STOP_ANSWER_MS);
        force.unref();
        grpcServer.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      await Promise.all([grpcDrained, connect.close(graceMs + STOP_ANSWER_MS)]);
      clearTimeout(stop);
      pipeline.flushLogs();
      options.log.info("server closed");
    },
  };
}

/** How long calls stopped at the end of the grace period have to send their UNAVAILABLE answer. */
const STOP_ANSWER_MS = 1000;

function shuttingDown(): UnavailableError {
  return new UnavailableError("the server is shutting down: retry", { reason: ErrorReason.SHUTTING_DOWN, retryAfterMs: DEPENDENCY_RETRY_DELAY_MS });
}

function portError(err: Error, port: number, variable: string): Error {
  if (/EADDRINUSE|address already in use|No address added/i.test(err.message)) {
    return new Error(`port ${port} is in use (set ${variable} to another port): ${err.message}`, { cause: err });
  }
  return err;
}
