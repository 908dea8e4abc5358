import { createServiceClient } from "@promptcraft/client";
import { Health, HealthCheckResponse_ServingStatus } from "@promptcraft/proto/grpc/health/v1/health_pb";
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { migrateAll, redact, startEmbedded, type DatabaseHandle } from "./database.js";
import { ensureDemoAccount, type DemoAccount } from "./demo.js";
import { REPO_ROOT, SERVICES, serviceMain, type ServiceInfo } from "./services.js";

/** Settings of `promptcraft start`, from the environment. */
export interface StartOptions {
  databaseUrl: string | undefined;
  embeddedPort: number;
  host: string;
  logLevel: string;
  /** Port overrides: `<SERVICE>_GRPC_PORT`, `<SERVICE>_CONNECT_PORT`. */
  ports: Record<string, { grpcPort: number; connectPort: number }>;
  readyTimeoutMs: number;
  /** The platform administrator's secret for identity; a fresh random one per run when unset. */
  platformAdminToken: string | undefined;
}

interface Child {
  info: ServiceInfo;
  ports: { grpcPort: number; connectPort: number };
  process: ChildProcess;
  exited: Promise<number | null>;
}

const say = (line: string) => process.stdout.write(`${line}\n`);

/**
 * `npm start`: the database (embedded unless DATABASE_URL), the schema, then each service as its
 * own process, exactly as containers run them; prints the endpoints once every service reports
 * SERVING. Ctrl-C stops the services gracefully, then the database (data kept).
 */
export async function start(options: StartOptions): Promise<void> {
  const began = performance.now();
  // Identity's platform-admin secret: only this process needs it (to create the demo tenant).
  const adminToken = options.platformAdminToken ?? randomBytes(24).toString("base64url");
  let db: DatabaseHandle;
  if (options.databaseUrl) {
    db = { url: options.databaseUrl, kind: "external", stop: async () => {} };
    say(`database: ${redact(db.url)} (DATABASE_URL)`);
  } else {
    say(`database: starting the embedded PostgreSQL (PGlite + pgvector) on 127.0.0.1:${options.embeddedPort} …`);
    db = await startEmbedded({ port: options.embeddedPort, log: (line) => say(`database: ${line}`) });
  }
  const children: Child[] = [];
  let stopping: Promise<void> | undefined;
  const stopAll = () =>
    (stopping ??= (async () => {
      say("\nstopping services …");
      for (const child of children) child.process.kill("SIGTERM");
      await Promise.all(children.map((c) => c.exited));
      await db.stop();
      say("stopped; data kept.");
    })());
  let interrupts = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    // A second Ctrl-C means "stop waiting": kill the services outright.
    if (signal === "SIGINT" && ++interrupts > 1) {
      for (const child of children) child.process.kill("SIGKILL");
      process.exit(130);
    }
    void stopAll().then(() => process.exit(0));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  try {
    say("schema: migrating …");
    await migrateAll(db.url, (line) => say(`  ${line}`));
    for (const info of SERVICES) children.push(spawnService(info, options, db, adminToken));
    await Promise.all(children.map((child) => waitServing(child, options.readyTimeoutMs)));
  } catch (err) {
    await stopAll();
    throw err;
  }
  const identity = children.find((c) => c.info.name === "identity")!;
  let demo: DemoAccount | undefined;
  try {
    demo = await ensureDemoAccount(`http://127.0.0.1:${identity.ports.grpcPort}`, adminToken, path.join(REPO_ROOT, ".promptcraft"));
  } catch (err) {
    say(`warning: could not create the demo tenant: ${(err as Error).message}`);
  }
  printEndpoints(children, db, options, performance.now() - began, demo);
  // A service that dies on its own takes the platform down with a clear message, rather than
  // leaving a half-working set of ports.
  const first = await Promise.race(children.map((c) => c.exited.then((code) => ({ c, code }))));
  if (!stopping) {
    say(`\n${first.c.info.name} exited unexpectedly (code ${first.code}); stopping the rest.`);
    await stopAll();
    process.exit(1);
  }
}

function spawnService(info: ServiceInfo, options: StartOptions, db: DatabaseHandle, adminToken: string): Child {
  const ports = options.ports[info.name] ?? { grpcPort: info.grpcPort, connectPort: info.connectPort };
  const peers = Object.fromEntries(
    SERVICES.map((s) => [`${s.name.toUpperCase()}_URL`, `http://${options.host}:${(options.ports[s.name] ?? s).grpcPort}`]),
  );
  const child = spawn(process.execPath, ["--enable-source-maps", serviceMain(info.name)], {
    env: {
      ...process.env,
      ...peers,
      DATABASE_URL: db.url,
      HOST: options.host,
      GRPC_PORT: String(ports.grpcPort),
      CONNECT_PORT: String(ports.connectPort),
      LOG_LEVEL: options.logLevel,
      // The embedded engine runs one statement at a time; a small pool avoids queueing sockets.
      DB_POOL_MAX: db.kind === "embedded" ? "4" : (process.env.DB_POOL_MAX ?? "10"),
      // We hold the services' stdin open: if this process dies, even by SIGKILL, they stop.
      STOP_WHEN_STDIN_CLOSES: "true",
      ...(info.name === "identity" ? { PLATFORM_ADMIN_TOKEN: adminToken } : {}),
    },
    stdio: ["pipe", "pipe", "pipe"],
  });
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on("line", (line) => say(formatLogLine(info.name, line)));
  }
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { info, ports, process: child, exited };
}

async function waitServing(child: Child, timeoutMs: number): Promise<void> {
  const client = createServiceClient(Health, `http://127.0.0.1:${child.ports.grpcPort}`, { timeoutMs: 1000 });
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void child.exited.then(() => (exited = true));
  while (Date.now() < deadline) {
    if (exited) throw new Error(`${child.info.name} exited during start (see its log above)`);
    try {
      const res = await client.check({ service: "" });
      if (res.status === HealthCheckResponse_ServingStatus.SERVING) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${child.info.name} did not report SERVING within ${timeoutMs} ms`);
}

const LEVELS: Record<number, string> = { 10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL" };

/** Child logs are JSON lines (for machines); on a terminal we show them compactly. */
function formatLogLine(service: string, line: string): string {
  try {
    const { level, time, msg, service: _s, name: _n, pid: _p, hostname: _h, ...rest } = JSON.parse(line) as Record<string, unknown>;
    const clock = typeof time === "string" ? time.slice(11, 19) : "";
    const extra = Object.keys(rest).length ? ` ${JSON.stringify(rest)}` : "";
    return `${clock} ${service.padEnd(9)} ${(LEVELS[level as number] ?? String(level)).padEnd(5)} ${String(msg)}${extra}`;
  } catch {
    return `${service.padEnd(9)} ${line}`;
  }
}

function printEndpoints(children: Child[], db: DatabaseHandle, options: StartOptions, elapsedMs: number, demo: DemoAccount | undefined): void {
  const host = options.host === "0.0.0.0" ? "127.0.0.1" : options.host;
  const rows = children.map((c) => [c.info.name, `${host}:${c.ports.grpcPort}`, `http://${host}:${c.ports.connectPort}`]);
  const widths = [9, 18, 28];
  const line = (cells: string[]) => "  " + cells.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join("  ");
  const content = children.find((c) => c.info.name === "content")?.ports ?? SERVICES[1];
  say("");
  say(`PromptCraft is up (${(elapsedMs / 1000).toFixed(1)} s):`);
  say(line(["service", "gRPC", "Connect / gRPC-Web"]));
  rows.forEach((row) => say(line(row)));
  say("");
  if (db.kind === "embedded") {
    say("  database: embedded PostgreSQL, for development: connections take turns on one session, no authentication;");
    say("            commits are fsynced (they survive a crash and a power cut). Production: DATABASE_URL.");
  }
  say(`  psql:     psql ${db.kind === "embedded" ? db.url.replace(/\/postgres$/, "/postgres?sslmode=disable") : redact(db.url)}`);
  say(`  grpcurl:  grpcurl -plaintext ${host}:${content.grpcPort} list`);
  say(`            grpcurl -plaintext -d '{"service":""}' ${host}:${content.grpcPort} grpc.health.v1.Health/Check`);
  say(`  curl:     curl -s -H 'content-type: application/json' -d '{"service":""}' http://${host}:${content.connectPort}/grpc.health.v1.Health/Check`);
  if (demo) {
    const identity = children.find((c) => c.info.name === "identity")?.ports ?? SERVICES[0];
    say("");
    say(`  demo:     tenant "${demo.tenantSlug}", owner ${demo.email}, password ${demo.password}   (.promptcraft/demo.json)`);
    say(`  token:    TOKEN=$(npm run -s promptcraft -- login --tenant ${demo.tenantSlug} --email ${demo.email} --password '${demo.password}')`);
    say(`            grpcurl -plaintext -H "authorization: Bearer $TOKEN" ${host}:${identity.grpcPort} promptcraft.identity.v1.IdentityService/GetTenant`);
  }
  say("");
  say("Ctrl-C stops everything (data is kept).");
}
