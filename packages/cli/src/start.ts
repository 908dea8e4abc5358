import { createServiceClient } from "@promptcraft/client";
import { Health, HealthCheckResponse_ServingStatus } from "@promptcraft/proto/grpc/health/v1/health_pb";
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { migrateAll, redact, startEmbedded, type DatabaseHandle } from "./database.js";
import { ensureDemoAccount, type DemoAccount } from "./demo.js";
import { REPO_ROOT, forgetRunningEndpoints, recordRunningEndpoints, serviceMain, type ServiceEndpoint } from "./services.js";

/** Settings of `promptcraft start`, from the environment. */
export interface StartOptions {
  databaseUrl: string | undefined;
  embeddedPort: number;
  logLevel: string;
  /** Where each service listens and how its peers reach it (`serviceEndpoints` of the environment). */
  endpoints: readonly ServiceEndpoint[];
  readyTimeoutMs: number;
  /** The platform administrator's secret for identity and analytics; a fresh random one per run when unset. */
  platformAdminToken: string | undefined;
  /** The embedded engine's data, the demo account and the record of the running endpoints live here. */
  stateDir: string;
}

/**
 * What `npm start` does when a service exits without being asked to (docs/decisions.md): it
 * restarts it after a delay that doubles from `firstDelayMs` up to `maxDelayMs` with each crash in a
 * row (starting over once the service has stayed up `stableMs`), and stops the whole platform when
 * one service has crashed `maxCrashes` times within `windowMs`.
 */
export const RESTART_POLICY = { firstDelayMs: 500, maxDelayMs: 15_000, stableMs: 60_000, maxCrashes: 5, windowMs: 60_000 } as const;

/**
 * The origins `npm start` lets call the Connect ports from a browser, unless CORS_ALLOWED_ORIGINS
 * says otherwise: the usual local dev servers (Vite 5173, Create React App / Next.js 3000,
 * webpack-dev-server and others 8080), by name and by address. A service run alone allows none.
 */
export const DEV_CORS_ORIGINS = [5173, 3000, 8080].flatMap((port) => [`http://localhost:${port}`, `http://127.0.0.1:${port}`]);

/** The services' CORS_ALLOWED_ORIGINS under `npm start`: the caller's, else {@link DEV_CORS_ORIGINS}. */
function corsOrigins(): string {
  return process.env.CORS_ALLOWED_ORIGINS ?? DEV_CORS_ORIGINS.join(",");
}

/** One service under the supervisor: its current process and its crash history. */
interface Supervised {
  endpoint: ServiceEndpoint;
  run: Run;
  /** Crashes in a row (reset once the service stays up `stableMs`). */
  attempt: number;
  /** When it crashed, within the last `windowMs`. */
  crashes: number[];
  restartTimer: NodeJS.Timeout | undefined;
}

/** One process of a service. */
interface Run {
  process: ChildProcess;
  exited: Promise<void>;
  startedAt: number;
  /** The last error it logged, to say why it went down. */
  lastError: string | undefined;
}

const say = (line: string) => process.stdout.write(`${line}\n`);
/** A line of the supervisor itself, in the columns of the services' log lines. */
const note = (level: "INFO" | "WARN" | "ERROR", line: string) => say(`${new Date().toISOString().slice(11, 19)} ${"platform".padEnd(9)} ${level.padEnd(5)} ${line}`);
const alive = (child: ChildProcess) => child.exitCode === null && child.signalCode === null;

/**
 * `npm start`: the database (embedded unless DATABASE_URL), the schema, then each service as its
 * own process, exactly as containers run them; prints the endpoints once every service reports
 * SERVING. A service that exits on its own afterwards is restarted ({@link RESTART_POLICY}) while
 * the others keep serving. Ctrl-C stops the services gracefully, then the database (data kept).
 * Resolves with the exit code once everything has stopped.
 */
export async function start(options: StartOptions): Promise<number> {
  const began = performance.now();
  // The platform-admin secret of identity and analytics; this process uses it to create the demo tenant.
  const adminToken = options.platformAdminToken ?? randomBytes(24).toString("base64url");
  let db: DatabaseHandle;
  if (options.databaseUrl) {
    db = { url: options.databaseUrl, kind: "external", stop: async () => {} };
    say(`database: ${redact(db.url)} (DATABASE_URL)`);
  } else {
    say(`database: starting the embedded PostgreSQL (PGlite + pgvector) on 127.0.0.1:${options.embeddedPort} …`);
    db = await startEmbedded({ dataDir: path.join(options.stateDir, "pgdata"), port: options.embeddedPort, log: (line) => say(`database: ${line}`) });
  }

  const services: Supervised[] = [];
  let phase: "starting" | "running" | "stopping" = "starting";
  let finished: (code: number) => void = () => {};
  const done = new Promise<number>((resolve) => (finished = resolve));
  let stopping: Promise<void> | undefined;
  const stopAll = (code: number, reason?: string) =>
    (stopping ??= (async () => {
      phase = "stopping";
      if (reason) note("ERROR", reason);
      say("\nstopping services …");
      for (const s of services) {
        clearTimeout(s.restartTimer);
        if (alive(s.run.process)) s.run.process.kill("SIGTERM");
      }
      await Promise.all(services.map((s) => s.run.exited));
      await db.stop();
      forgetRunningEndpoints(options.stateDir);
      say("stopped; data kept.");
      finished(code);
    })());
  let interrupts = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    // A second Ctrl-C means "stop waiting": kill the services outright.
    if (signal === "SIGINT" && ++interrupts > 1) {
      for (const s of services) s.run.process.kill("SIGKILL");
      process.exit(130);
    }
    void stopAll(0);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  const env = serviceEnv(options, db, adminToken);
  const onExit = (svc: Supervised, code: number | null, signal: NodeJS.Signals | null) => {
    // While starting, waitServing reports it; while stopping, we asked for it.
    if (phase === "running") onCrash(svc, code, signal);
  };
  const onCrash = (svc: Supervised, code: number | null, signal: NodeJS.Signals | null) => {
    const { name } = svc.endpoint;
    const now = Date.now();
    if (now - svc.run.startedAt >= RESTART_POLICY.stableMs) svc.attempt = 0;
    svc.attempt += 1;
    svc.crashes = [...svc.crashes.filter((t) => now - t < RESTART_POLICY.windowMs), now];
    const how = `${signal ? `was killed by ${signal}` : `exited with code ${code}`}${svc.run.lastError ? ` (last error: ${svc.run.lastError})` : ""}`;
    if (svc.crashes.length >= RESTART_POLICY.maxCrashes) {
      void stopAll(1, `${name} crashed ${svc.crashes.length} times within ${RESTART_POLICY.windowMs / 1000} s, the last time it ${how}: giving up, stopping everything.`);
      return;
    }
    const delay = Math.min(RESTART_POLICY.firstDelayMs * 2 ** (svc.attempt - 1), RESTART_POLICY.maxDelayMs);
    note("WARN", `${name} ${how}; restarting it in ${delay} ms (attempt ${svc.attempt})`);
    svc.restartTimer = setTimeout(() => {
      if (phase !== "running") return;
      svc.run = startRun(svc.endpoint, env, (code, signal) => onExit(svc, code, signal));
      const child = svc.run.process;
      waitServing(svc.endpoint, svc.run, options.readyTimeoutMs, () => phase !== "running").then(
        () => note("INFO", `${name} is SERVING again (pid ${child.pid}, attempt ${svc.attempt})`),
        (err: Error) => {
          // An exit is counted by the exit handler; one that never gets ready is killed and counted too.
          if (phase !== "running" || !alive(child)) return;
          note("WARN", `${name} ${err.message}; killing it`);
          child.kill("SIGKILL");
        },
      );
    }, delay);
  };

  try {
    say("schema: migrating …");
    await migrateAll(db.url, (line) => say(`  ${line}`));
    if (phase !== "starting") return await done;
    for (const endpoint of options.endpoints) {
      const svc: Supervised = { endpoint, attempt: 0, crashes: [], restartTimer: undefined, run: startRun(endpoint, env, (code, signal) => onExit(svc, code, signal)) };
      services.push(svc);
    }
    // A service that fails at its first start (a taken port, a bad setting) stops everything at once:
    // restarting would fail the same way.
    await Promise.all(services.map((svc) => waitServing(svc.endpoint, svc.run, options.readyTimeoutMs, () => phase !== "starting")));
  } catch (err) {
    if (phase !== "starting") return done;
    await stopAll(1);
    throw err;
  }
  phase = "running";
  // An exit between its SERVING answer and now was not counted yet.
  for (const svc of services) if (!alive(svc.run.process)) onCrash(svc, svc.run.process.exitCode, svc.run.process.signalCode);
  recordRunningEndpoints(options.stateDir, options.endpoints);
  const identity = options.endpoints.find((e) => e.name === "identity")!;
  let demo: DemoAccount | undefined;
  try {
    demo = await ensureDemoAccount(identity.url, adminToken, options.stateDir);
  } catch (err) {
    say(`warning: could not create the demo tenant: ${(err as Error).message}`);
  }
  printEndpoints(options, db, performance.now() - began, demo);
  return done;
}

/** Services with platform-admin methods (identity: tenants, signing keys; analytics: read models, partitions). */
const PLATFORM_ADMIN_SERVICES = new Set(["identity", "analytics"]);

/** The environment every service process starts with (its own ports are added per service). */
function serviceEnv(options: StartOptions, db: DatabaseHandle, adminToken: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    ...Object.fromEntries(options.endpoints.map((e) => [`${e.name.toUpperCase()}_URL`, e.url])),
    DATABASE_URL: db.url,
    LOG_LEVEL: options.logLevel,
    // The embedded engine runs one statement at a time; a small pool avoids queueing sockets.
    DB_POOL_MAX: db.kind === "embedded" ? "4" : (process.env.DB_POOL_MAX ?? "10"),
    // We hold the services' stdin open: if this process dies, even by SIGKILL, they stop.
    STOP_WHEN_STDIN_CLOSES: "true",
    PLATFORM_ADMIN_TOKEN: adminToken,
    // The service credential the services present to each other (content's usage reporter to
    // analytics): the deployment's if set, else a fresh one per run (only these processes know it).
    SERVICE_TOKEN: process.env.SERVICE_TOKEN || randomBytes(32).toString("base64url"),
    CORS_ALLOWED_ORIGINS: corsOrigins(),
  };
}

/** Starts one process of a service; `onExit` hears how it ended. */
function startRun(endpoint: ServiceEndpoint, env: NodeJS.ProcessEnv, onExit: (code: number | null, signal: NodeJS.Signals | null) => void): Run {
  const child = spawn(process.execPath, ["--enable-source-maps", serviceMain(endpoint.name)], {
    env: {
      ...env,
      HOST: endpoint.bindHost,
      GRPC_PORT: String(endpoint.grpcPort),
      CONNECT_PORT: String(endpoint.connectPort),
      // Only the services with platform-admin methods take the platform administrator's secret.
      PLATFORM_ADMIN_TOKEN: PLATFORM_ADMIN_SERVICES.has(endpoint.name) ? env.PLATFORM_ADMIN_TOKEN : undefined,
    },
    stdio: ["pipe", "pipe", "pipe"],
    // A process group of its own: a terminal's Ctrl-C reaches the supervisor alone, which stops the
    // services itself, so any exit it did not ask for is a crash.
    detached: true,
  });
  const run: Run = {
    process: child,
    startedAt: Date.now(),
    lastError: undefined,
    exited: new Promise((resolve) =>
      child.once("exit", (code, signal) => {
        resolve();
        onExit(code, signal);
      }),
    ),
  };
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on("line", (line) => {
      const { text, error } = formatLogLine(endpoint.name, line);
      say(text);
      if (error) run.lastError = error;
    });
  }
  return run;
}

/** Resolves once the service's current process reports SERVING; rejects if it exits, `abandon()` says so, or time runs out. */
async function waitServing(endpoint: ServiceEndpoint, run: Run, timeoutMs: number, abandon: () => boolean): Promise<void> {
  const child = run.process;
  const client = createServiceClient(Health, endpoint.url, { timeoutMs: 1000 });
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!alive(child)) {
      const how = child.signalCode ? `killed by ${child.signalCode}` : `exit code ${child.exitCode}`;
      throw new Error(`${endpoint.name} exited during start (${how}${run.lastError ? `: ${run.lastError}` : ""}; see its log above)`);
    }
    if (abandon()) throw new Error(`${endpoint.name}: start abandoned`);
    try {
      const res = await client.check({ service: "" });
      if (res.status === HealthCheckResponse_ServingStatus.SERVING) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${endpoint.name} did not report SERVING within ${timeoutMs} ms`);
}

const LEVELS: Record<number, string> = { 10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL" };

/**
 * Child logs are JSON lines (for machines); on a terminal we show them compactly. `error` is the
 * message of an ERROR or FATAL line (with its error's message), or of a line that is not JSON.
 */
function formatLogLine(service: string, line: string): { text: string; error: string | undefined } {
  try {
    const { level, time, msg, service: _s, name: _n, pid: _p, hostname: _h, ...rest } = JSON.parse(line) as Record<string, unknown>;
    const clock = typeof time === "string" ? time.slice(11, 19) : "";
    const extra = Object.keys(rest).length ? ` ${JSON.stringify(rest)}` : "";
    const cause = (rest.err as { message?: unknown } | undefined)?.message;
    const error = typeof level === "number" && level >= 50 ? clip(`${String(msg)}${typeof cause === "string" ? `: ${cause}` : ""}`) : undefined;
    return { text: `${clock} ${service.padEnd(9)} ${(LEVELS[level as number] ?? String(level)).padEnd(5)} ${String(msg)}${extra}`, error };
  } catch {
    return { text: `${service.padEnd(9)} ${line}`, error: clip(line.trim()) || undefined };
  }
}

/** An error message short enough for one line of the supervisor's. */
const clip = (text: string) => (text.length > 240 ? `${text.slice(0, 239)}…` : text);

/** The URL `psql` takes: the embedded engine speaks no TLS; a password is left out (psql asks for it). */
function psqlUrl(db: DatabaseHandle): { url: string; asksPassword: boolean } {
  const url = new URL(db.url);
  if (db.kind === "embedded") url.searchParams.set("sslmode", "disable");
  const asksPassword = url.password !== "";
  url.password = "";
  return { url: url.toString(), asksPassword };
}

function printEndpoints(options: StartOptions, db: DatabaseHandle, elapsedMs: number, demo: DemoAccount | undefined): void {
  const widths = [9, 18, 28];
  const line = (cells: string[]) => "  " + cells.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join("  ");
  const endpoint = (name: string) => options.endpoints.find((e) => e.name === name)!;
  const content = endpoint("content");
  const psql = psqlUrl(db);
  say("");
  say(`PromptCraft is up (${(elapsedMs / 1000).toFixed(1)} s):`);
  say(line(["service", "gRPC", "Connect / gRPC-Web"]));
  for (const e of options.endpoints) say(line([e.name, e.grpcAddress, e.connectUrl]));
  say("");
  if (db.kind === "embedded") {
    say("  database: embedded PostgreSQL, for development: connections take turns on one session, no authentication;");
    say("            commits are fsynced (they survive a crash and a power cut). Production: DATABASE_URL.");
  }
  // Every command below works as printed, from the repository's root in any shell: the
  // promptcraft commands find this platform's ports in the state directory (endpoints.json).
  say(`  psql:     psql '${psql.url}'${psql.asksPassword ? "   (asks for the password of DATABASE_URL)" : ""}`);
  say(`  grpcurl:  grpcurl -plaintext ${content.grpcAddress} list`);
  say(`            grpcurl -plaintext -d '{"service":""}' ${content.grpcAddress} grpc.health.v1.Health/Check`);
  say(`  curl:     curl -s -H 'content-type: application/json' -d '{"service":""}' ${content.connectUrl}/grpc.health.v1.Health/Check`);
  const origins = corsOrigins().split(",").map((o) => o.trim()).filter(Boolean);
  const pages = origins.includes("*") ? "pages of any origin" : origins.length ? `pages of ${origins.join(", ")}` : "no page of another origin";
  say(`  browsers: ${pages} may call the Connect ports (CORS_ALLOWED_ORIGINS)`);
  if (demo) {
    const file = path.join(options.stateDir, "demo.json");
    const shown = file.startsWith(REPO_ROOT + path.sep) ? path.relative(REPO_ROOT, file) : file;
    say("");
    say(`  demo:     tenant "${demo.tenantSlug}", owner ${demo.email}, password ${demo.password}   (${shown})`);
    say(`  token:    TOKEN=$(npm run -s promptcraft -- login --tenant ${demo.tenantSlug} --email ${demo.email} --password '${demo.password}')`);
    say(`            grpcurl -plaintext -H "authorization: Bearer $TOKEN" ${endpoint("identity").grpcAddress} promptcraft.identity.v1.IdentityService/GetTenant`);
  }
  say("");
  say("Ctrl-C stops everything (data is kept).");
}
