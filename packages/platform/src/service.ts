import type { DescMethod } from "@bufbuild/protobuf";
import type { SpanExporter } from "@opentelemetry/sdk-trace";
import type { Tracer } from "@opentelemetry/api";
import type { Metric } from "prom-client";
import { closeKnex, createKnex, DatabaseProbe, type Knex, type KnexLog, type ServiceName } from "@promptcraft/db";
import type { z } from "zod";
import type { baseConfigShape } from "./config.js";
import { ConfigError, loadConfig } from "./config.js";
import { remoteJwks, TokenVerifier, type JwksFetcher } from "./auth.js";
import {
  cachedApiKeyResolver,
  cachedStatusChecker,
  credentialAuthenticator,
  databaseStatusChecker,
  remoteApiKeyResolver,
  type ApiKeyResolver,
} from "./credentials.js";
import type { HttpRoute } from "./connect-transport.js";
import { DatabaseHealth } from "./database-health.js";
import { firstLine, LogThrottle } from "./log-throttle.js";
import { UnavailableError } from "./errors.js";
import type { ServiceRegistration } from "./handlers.js";
import { createLogger, type Logger } from "./logger.js";
import { runProcess } from "./run.js";
import { startServer, type RunningServer } from "./server.js";
import { startTracing, type Tracing } from "./tracing.js";
import { withServiceCredential } from "./service-credential.js";

/** The settings every service config has (see `serviceConfig`). */
export type BaseServiceConfig = z.infer<z.ZodObject<typeof baseConfigShape>> & {
  GRPC_PORT: number;
  CONNECT_PORT: number;
};

/** What every service's handlers get: its parsed config, its database pool, its logger. */
export interface ServiceDeps<C extends BaseServiceConfig = BaseServiceConfig> {
  config: C;
  db: Knex;
  log: Logger;
  /**
   * Aborted when graceful shutdown begins, before the server drains: long-lived streams (a tail)
   * end themselves with UNAVAILABLE and a resume position instead of holding the drain to its grace
   * period and then being cancelled.
   */
  stopping?: AbortSignal;
  /** The service's tracer, for clients of other services ({@link peerClient}); undefined when tracing is off. */
  tracer?: Tracer | undefined;
}

/** What a service's {@link ServiceModule.setup} prepares before it serves. */
export interface ServiceSetup<S = unknown> {
  /** Handed to `routes`. */
  state: S;
  /**
   * Where access-token keys come from. Default: identity's `GetJwks` at `IDENTITY_URL`; identity
   * itself reads its own key store.
   */
  jwks?: JwksFetcher;
  /**
   * How API keys (`pck_…`) are resolved. Default: identity's `IntrospectCredential` at
   * `IDENTITY_URL`; identity itself reads its own store. Either way the platform caches the answers
   * for at most CREDENTIAL_CACHE_TTL_MS.
   */
  resolveApiKey?: ApiKeyResolver;
  /** Metrics of the service's own (a usage reporter's counters), added to `/metrics`. */
  metrics?: Metric[];
  /** Extra plain HTTP routes on the Connect port. */
  httpRoutes?: Record<string, HttpRoute>;
  /**
   * Stops what `setup` started (timers, background work) once the server has drained, at the
   * same time as the pool is closed, which cancels and rolls back database work still running
   * (background work that passes its own AbortController's signal to withTenant can stop itself
   * first, as identity's housekeeping does). It gets {@link BACKGROUND_STOP_MS}; shutdown does
   * not wait longer.
   */
  close?(): Promise<void>;
}

/**
 * A service, described once: its name (which is also its database role), its config schema, and
 * its RPC services. `startService` and `runService` do the rest the same way for all five.
 */
export interface ServiceModule<C extends BaseServiceConfig = BaseServiceConfig, S = unknown> {
  name: ServiceName;
  config: z.ZodType<C>;
  /** Work before serving (identity: make sure a signing key exists); its result reaches `routes`. */
  setup?(deps: ServiceDeps<C>): Promise<ServiceSetup<S>>;
  routes(deps: ServiceDeps<C>, state: S): ServiceRegistration[];
}

/** A started service: its server plus the resources it owns. */
export interface RunningService extends RunningServer {
  readonly deps: ServiceDeps;
  /** What `setup` returned (identity: its key ring), for tests. */
  readonly state: unknown;
  /** The access-token verifier every non-public call goes through. */
  readonly verifier: TokenVerifier;
  /** The cached API key resolver and tenant/user status checker (tests may clear their caches). */
  readonly credentials: {
    resolveApiKey: ReturnType<typeof cachedApiKeyResolver>;
    checkStatus: ReturnType<typeof cachedStatusChecker>;
  };
  /** The service's tracing (its tracer is undefined when tracing is off). */
  readonly tracing: Tracing;
}

/** Options of {@link startService} beyond the config. */
export interface StartOptions {
  /** The root logger; default: JSON lines on stdout at LOG_LEVEL. */
  log?: Logger;
  /**
   * Where spans go instead of OTLP, which turns tracing on whatever the config says (tests pass an
   * `InMemorySpanExporter`). OTEL_SDK_DISABLED still turns it off.
   */
  traceExporter?: SpanExporter;
}

/** How long shutdown waits for a service's {@link ServiceSetup.close} after the server drained. */
export const BACKGROUND_STOP_MS = 1000;
/** How long open transactions get to roll back after their cancel when the pool closes, before the connections are destroyed. */
const POOL_CLOSE_MS = 400;
/** Shutdown ends within SHUTDOWN_GRACE_MS plus this, or the process exits anyway (see runService). */
export const SHUTDOWN_MARGIN_MS = 2000;
/** How long shutdown waits for the last spans to be exported (alongside the pool's close), after the server drained. */
export const TRACE_FLUSH_MS = 1000;

/**
 * Starts `module` with `config`: checks the database is reachable (failing with a clear message
 * if not), then serves both transports, with readiness following the database (see
 * {@link DatabaseHealth}). `close()` drains calls for up to SHUTDOWN_GRACE_MS, then
 * cancels what is left — the calls and their database work, which rolls back — and closes the pool
 * without waiting for statements stuck on locks, and exports the spans still pending (at most
 * TRACE_FLUSH_MS, meanwhile): it resolves within SHUTDOWN_GRACE_MS plus about a second and a half.
 */
export async function startService<C extends BaseServiceConfig, S>(
  module: ServiceModule<C, S>,
  config: C,
  options: StartOptions = {},
): Promise<RunningService> {
  const log = options.log ?? createLogger(module.name, config.LOG_LEVEL);
  const applicationName = `promptcraft-${module.name}`;
  const poolLog = new LogThrottle(log);
  const db = createKnex({
    url: config.DATABASE_URL,
    poolMax: config.DB_POOL_MAX,
    applicationName,
    acquireTimeoutMs: config.DB_ACQUIRE_TIMEOUT_MS,
    log: knexLog(log, poolLog),
  });
  try {
    await db.raw("select 1");
  } catch (err) {
    await db.destroy();
    throw new Error(`${module.name}: cannot reach the database at ${hostOf(config.DATABASE_URL)}: ${(err as Error).message}`, { cause: err });
  }
  const probe = new DatabaseProbe({ url: config.DATABASE_URL, applicationName, timeoutMs: config.DB_ACQUIRE_TIMEOUT_MS });
  const watcher = new DatabaseHealth({ probe: () => probe.check(), intervalMs: config.DB_PROBE_INTERVAL_MS, log });
  const stopping = new AbortController();
  const tracing = startTracing({ config, service: module.name, log, exporter: options.traceExporter });
  const tracer = tracing.tracer;
  const deps: ServiceDeps<C> = { config, db, log, stopping: stopping.signal, tracer };
  let server: RunningServer;
  let setup: ServiceSetup<S> | undefined;
  let verifier: TokenVerifier;
  let fetchJwks: JwksFetcher | undefined;
  let resolveApiKey: ReturnType<typeof cachedApiKeyResolver> | undefined;
  let checkStatus: ReturnType<typeof cachedStatusChecker>;
  try {
    setup = module.setup ? await module.setup(deps) : { state: undefined as S };
    fetchJwks = setup.jwks ?? remoteJwks(config.IDENTITY_URL, { tracer });
    verifier = new TokenVerifier({ fetchJwks, issuer: config.TOKEN_ISSUER, log });
    resolveApiKey = cachedApiKeyResolver(setup.resolveApiKey ?? remoteApiKeyResolver(config.IDENTITY_URL, { tracer }));
    checkStatus = cachedStatusChecker(databaseStatusChecker(db, module.name));
    const services = module.routes(deps, setup.state);
    server = await startServer({
      name: module.name,
      host: config.HOST,
      grpcPort: config.GRPC_PORT,
      connectPort: config.CONNECT_PORT,
      services,
      log,
      authenticate: withServiceCredential(config.SERVICE_TOKEN, serviceMethodsOf(services), credentialAuthenticator({ verifier, resolveApiKey, checkStatus })),
      httpRoutes: setup.httpRoutes,
      shutdownGraceMs: config.SHUTDOWN_GRACE_MS,
      cors: { allowedOrigins: config.CORS_ALLOWED_ORIGINS, maxAgeSeconds: config.CORS_MAX_AGE_S },
      onDependencyUnavailable: (dependency) => {
        if (dependency === "database") watcher.suspect();
      },
      tracer,
    });
    for (const metric of setup.metrics ?? []) server.metrics.registry.registerMetric(metric);
    watcher.start(server.health, ["", ...services.map((r) => r.service.typeName)]);
  } catch (err) {
    watcher.stop();
    probe.close();
    fetchJwks?.close?.();
    resolveApiKey?.close?.();
    await Promise.all([
      stopBackground(setup, log),
      closeKnex(db, { reason: shuttingDown(), timeoutMs: POOL_CLOSE_MS }),
      tracing.shutdown(TRACE_FLUSH_MS),
    ]);
    throw err;
  }
  return {
    ...server,
    deps: deps as unknown as ServiceDeps,
    state: setup.state,
    verifier,
    credentials: { resolveApiKey, checkStatus },
    tracing,
    async close() {
      // Readiness stops following the database first: shutdown's NOT_SERVING is final.
      watcher.stop();
      stopping.abort();
      await server.close();
      probe.close();
      fetchJwks?.close?.();
      resolveApiKey.close?.();
      // Calls that outlived the grace period were cancelled by the transports, and with them their
      // database work; whatever is still open on the pool (background work included) is cancelled
      // here. knex.destroy() alone would wait for every connection in use, i.e. for any lock.
      // The spans of the last calls go out meanwhile.
      await Promise.all([
        stopBackground(setup, log),
        closeKnex(db, { reason: shuttingDown(), timeoutMs: POOL_CLOSE_MS }),
        tracing.shutdown(TRACE_FLUSH_MS),
      ]);
      poolLog.flush();
      log.info("stopped");
    },
  };
}

/**
 * knex's messages as JSON lines through the service's logger, without stack traces, and once per
 * window per kind: while the database is down the pool reports every failed acquire
 * ("Acquire connection error: <stack>") and every lost connection ("Connection Error: …").
 */
function knexLog(log: Logger, quiet: LogThrottle): KnexLog {
  const write = (level: "warn" | "error") => (message: string) => {
    const line = firstLine(message);
    // Each message starts with a fixed phrase ("Acquire connection error", "Connection Error").
    const kind = line.split(":", 1)[0]!.slice(0, 80);
    quiet.write(level, `knex:${level}:${kind}`, { detail: line.slice(0, 500) }, `database pool: ${kind}`);
  };
  return {
    warn: write("warn"),
    error: write("error"),
    deprecate: (message) => quiet.write("warn", `knex:deprecate:${message}`, {}, `knex: ${message}`),
    debug: (message) => log.debug({ detail: firstLine(message) }, "knex"),
  };
}

/**
 * The whole `main.ts` of a service: parse config from the environment (exit 1 with the list of
 * bad variables), start, and stop gracefully on SIGTERM/SIGINT.
 */
export function runService<C extends BaseServiceConfig, S>(module: ServiceModule<C, S>): void {
  let config: C;
  try {
    config = loadConfig(module.config);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${module.name}: ${err.message}\n`);
    process.exit(1);
  }
  const log = createLogger(module.name, config.LOG_LEVEL);
  runProcess(module.name, log, () => startService(module, config, { log }), {
    stopWhenStdinCloses: config.STOP_WHEN_STDIN_CLOSES,
    stopWithinMs: config.SHUTDOWN_GRACE_MS + SHUTDOWN_MARGIN_MS,
  });
}

function shuttingDown(): UnavailableError {
  return new UnavailableError("the service is shutting down; retry on another replica");
}

/** Runs `setup.close()`, giving up (with a warning) after BACKGROUND_STOP_MS. */
async function stopBackground(setup: ServiceSetup<unknown> | undefined, log: Logger): Promise<void> {
  const closing = setup?.close?.();
  if (!closing) return;
  let timer: NodeJS.Timeout | undefined;
  const stopped = await Promise.race([
    closing.then(
      () => true,
      (err: unknown) => {
        log.warn({ err }, "background work failed to stop");
        return true;
      },
    ),
    new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), BACKGROUND_STOP_MS))),
  ]);
  clearTimeout(timer);
  if (!stopped) log.warn(`background work did not stop within ${BACKGROUND_STOP_MS} ms; not waiting for it`);
}

function hostOf(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || 5432}${u.pathname}`;
  } catch {
    return "(unparseable DATABASE_URL)";
  }
}

/** The methods of `services` that accept the service credential. */
function serviceMethodsOf(services: readonly ServiceRegistration[]): Set<DescMethod> {
  return new Set(services.flatMap((r) => r.service.methods.filter((m) => r.serviceMethods?.has(m.localName))));
}
