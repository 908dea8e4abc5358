import { describe, test, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { promisify } from "node:util";
import { randomBytes, randomUUID } from "node:crypto";
import { createServiceClient } from "@promptcraft/client";
import { Health, HealthCheckResponse_ServingStatus } from "@promptcraft/proto/grpc/health/v1/health_pb";
import { IdentityService } from "@promptcraft/proto/promptcraft/identity/v1/identity_service_pb";

// `npm start` as a newcomer runs it, with every port moved: the commands its banner prints work as
// printed from another shell, a crashed service comes back while the others keep serving, and one
// that keeps crashing stops the platform with the reason. On the embedded engine the platform starts
// its own (as `npm start` does without DATABASE_URL); on PostgreSQL it uses DATABASE_URL.

const BIN = createRequire(import.meta.url).resolve("@promptcraft/cli").replace(/index\.js$/, "bin.js");
const REPO_ROOT = path.resolve(path.dirname(BIN), "../../..");
const EMBEDDED = process.env.PROMPTCRAFT_TEST_DB_KIND === "embedded";
const NAMES = ["identity", "content", "graph", "search", "analytics"] as const;
type Name = (typeof NAMES)[number];
const BOUND_MS = 150_000;

/** Ports outside the kernel's ephemeral range (where other tests' port-0 servers land), free now. */
async function freePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) {
    const candidate = 20_000 + Math.floor(Math.random() * 12_000);
    if (!ports.has(candidate) && (await holdPort(candidate).then((s) => closeServer(s).then(() => true), () => false))) ports.add(candidate);
  }
  return [...ports];
}

function holdPort(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    // Connections are refused outright (the supervisor's health checks reach a held port too).
    const server = createServer((socket) => socket.destroy());
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve(server));
  });
}

const closeServer = (server: Server) => new Promise<void>((resolve) => server.close(() => resolve()));

/** A running `promptcraft start`, its output so far, and how it ended. */
class Platform {
  output = "";
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly process: ChildProcess;

  constructor(readonly env: NodeJS.ProcessEnv) {
    this.process = spawn(process.execPath, [BIN, "start"], { cwd: REPO_ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    for (const stream of [this.process.stdout!, this.process.stderr!]) stream.on("data", (chunk: Buffer) => (this.output += chunk.toString()));
    this.exited = new Promise((resolve) => this.process.once("exit", (code, signal) => resolve({ code, signal })));
  }

  /** Waits (bounded) until the output matches. */
  async waitFor(pattern: RegExp, timeoutMs = BOUND_MS): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = this.output.match(pattern);
      if (match) return match;
      if (Date.now() > deadline) throw new Error(`no ${pattern} in the output of npm start within ${timeoutMs} ms:\n${this.output.slice(-4000)}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** The pid of a service's current process (a child of the supervisor running its main.js). */
  servicePid(name: Name): number {
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
        const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
        const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8");
        if (ppid === this.process.pid && cmdline.includes(`services/${name}/dist/src/main.js`)) return Number(entry);
      } catch {
        // the process ended while we looked
      }
    }
    throw new Error(`no running ${name} process under npm start`);
  }

  async stop(): Promise<void> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) return;
    this.process.kill("SIGTERM");
    const timer = setTimeout(() => this.process.kill("SIGKILL"), 60_000);
    await this.exited;
    clearTimeout(timer);
  }
}

async function serving(url: string): Promise<boolean> {
  try {
    const res = await createServiceClient(Health, url, { timeoutMs: 5000 }).check({ service: "" });
    return res.status === HealthCheckResponse_ServingStatus.SERVING;
  } catch {
    return false;
  }
}

/** The commands of the banner, as printed (a label's command, and the continuation lines under it). */
function bannerCommands(output: string): string[] {
  const banner = output.slice(output.indexOf("PromptCraft is up"));
  const commands: string[] = [];
  let inCommands = false;
  for (const line of banner.split("\n")) {
    const labelled = /^ {2}(psql|grpcurl|curl|token): +(\S.*)$/.exec(line);
    if (labelled) {
      commands.push(labelled[2]!.replace(/ {3}\(.*\)$/, ""));
      inCommands = true;
    } else if (inCommands && /^ {12}\S/.test(line)) {
      commands.push(line.trim());
    } else {
      inCommands = false;
    }
  }
  return commands;
}

describe("npm start with its ports moved", () => {
  const stateDir = mkdtempSync(path.join(tmpdir(), "promptcraft-start-"));
  const account = { tenantSlug: `start-${randomBytes(4).toString("hex")}`, email: "owner@example.com", password: `p${randomBytes(12).toString("base64url")}`, requestId: randomUUID() };
  const grpcUrl = {} as Record<Name, string>;
  const connectUrl = {} as Record<Name, string>;
  let embeddedPort = 0;
  let platform: Platform;
  /** A shell that did not start the platform: no port variables, only where this checkout keeps its state. */
  const freshShell = { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? tmpdir(), PROMPTCRAFT_STATE_DIR: stateDir };
  const sh = (command: string, input?: string) => {
    const run = promisify(execFile)("bash", ["-c", command], { cwd: REPO_ROOT, env: freshShell, timeout: 60_000 });
    if (input !== undefined) {
      run.child.stdin?.end(input);
    }
    return run;
  };

  beforeAll(async () => {
    const ports = await freePorts(11);
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? "",
      PROMPTCRAFT_STATE_DIR: stateDir,
      PROMPTCRAFT_READY_TIMEOUT_MS: String(BOUND_MS),
      // The failed logins of other test files add up per address in a shared database.
      LOGIN_THROTTLE_ADDRESS_FAILURES: "100000",
    };
    NAMES.forEach((name, i) => {
      env[`${name.toUpperCase()}_GRPC_PORT`] = String(ports[i]);
      env[`${name.toUpperCase()}_CONNECT_PORT`] = String(ports[i + 5]);
      grpcUrl[name] = `http://127.0.0.1:${ports[i]}`;
      connectUrl[name] = `http://127.0.0.1:${ports[i + 5]}`;
    });
    embeddedPort = ports[10]!;
    if (EMBEDDED) env.PROMPTCRAFT_EMBEDDED_PORT = String(embeddedPort);
    else env.DATABASE_URL = process.env.DATABASE_URL;
    // The demo account of this run (npm start keeps it in the state directory): its own tenant.
    writeFileSync(path.join(stateDir, "demo.json"), JSON.stringify(account), { mode: 0o600 });
    platform = new Platform(env);
    await platform.waitFor(/Ctrl-C stops everything/);
  });

  afterAll(async () => {
    await platform?.stop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  test("every command the banner prints works as printed, from a shell without the port variables", async () => {
    const commands = bannerCommands(platform.output);
    assert.equal(commands.length, 6, `the banner's commands:\n${commands.join("\n")}`);
    const [psql, grpcList, grpcCheck, curl, token, grpcGetTenant] = commands as [string, string, string, string, string, string];
    const contentAddress = grpcUrl.content.slice("http://".length);

    if (EMBEDDED) assert.equal(psql, `psql 'postgres://postgres@127.0.0.1:${embeddedPort}/postgres?sslmode=disable'`);
    else assert.match(psql, /^psql 'postgres:\/\/[^':]+@/, "a URL without a password");
    const fromPsql = await sh(psql, "select count(*) from tenant where slug = '" + account.tenantSlug + "';\n");
    assert.match(fromPsql.stdout, /^\s+1$/m, "psql reaches the platform's database");

    // grpcurl is not installed where the tests run: check the address and method it is given.
    for (const command of [grpcList, grpcCheck]) {
      assert.ok(command.startsWith(`grpcurl -plaintext `) && command.includes(` ${contentAddress} `), command);
    }
    assert.ok(grpcCheck.endsWith(`${contentAddress} grpc.health.v1.Health/Check`), grpcCheck);
    assert.ok(await serving(`http://${contentAddress}`));

    const fromCurl = await sh(curl);
    assert.deepEqual(JSON.parse(fromCurl.stdout), { status: "SERVING" });

    // The token line in a fresh shell: `promptcraft login` finds identity on its moved port.
    assert.match(token, /^TOKEN=\$\(npm run -s promptcraft -- login /);
    const accessToken = (await sh(`${token}\nprintf %s "$TOKEN"`)).stdout.trim();
    assert.match(accessToken, /^[\w-]+\.[\w-]+\.[\w-]+$/);
    const getTenant = /^grpcurl -plaintext -H "authorization: Bearer \$TOKEN" (\S+) promptcraft\.identity\.v1\.IdentityService\/GetTenant$/.exec(grpcGetTenant);
    assert.ok(getTenant, grpcGetTenant);
    const tenant = await createServiceClient(IdentityService, `http://${getTenant[1]}`, { token: accessToken }).getTenant({});
    assert.equal(tenant.slug, account.tenantSlug);
    assert.equal(`http://${getTenant[1]}`, grpcUrl.identity);
  });

  test("pages of the local dev servers may call the Connect ports from a browser, other pages not", async () => {
    assert.match(platform.output, /^ {2}browsers: pages of http:\/\/localhost:5173, .* may call the Connect ports \(CORS_ALLOWED_ORIGINS\)$/m);
    const preflight = (origin: string) =>
      fetch(`${connectUrl.content}/grpc.health.v1.Health/Check`, {
        method: "OPTIONS",
        headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "content-type,authorization" },
      });
    for (const origin of ["http://localhost:5173", "http://127.0.0.1:3000", "http://localhost:8080"]) {
      const res = await preflight(origin);
      assert.equal(res.status, 204, origin);
      assert.equal(res.headers.get("access-control-allow-origin"), origin);
    }
    const refused = await preflight("https://app.example.com");
    assert.equal(refused.status, 403);
    assert.equal(refused.headers.get("access-control-allow-origin"), null);
  });

  test("a service killed with SIGKILL is restarted while the others keep serving", async () => {
    const others = NAMES.filter((n) => n !== "identity");
    const killed = platform.servicePid("identity");
    let watching = true;
    const outages: string[] = [];
    let checks = 0;
    const watch = (async () => {
      while (watching) {
        for (const name of others) {
          checks += 1;
          if (!(await serving(grpcUrl[name]))) outages.push(name);
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    try {
      process.kill(killed, "SIGKILL");
      await platform.waitFor(/platform +WARN +identity was killed by SIGKILL; restarting it in 500 ms \(attempt 1\)/);
      await platform.waitFor(/platform +INFO +identity is SERVING again \(pid \d+, attempt 1\)/);
      assert.ok(await serving(grpcUrl.identity));
      assert.notEqual(platform.servicePid("identity"), killed);
    } finally {
      watching = false;
      await watch;
    }
    assert.ok(checks >= others.length, "the others were checked while identity was down");
    assert.deepEqual(outages, [], "no other service stopped serving");

    // Logins work again on the restarted identity, with the banner's command.
    const token = bannerCommands(platform.output)[4]!;
    const accessToken = (await sh(`${token}\nprintf %s "$TOKEN"`)).stdout.trim();
    assert.equal((await createServiceClient(IdentityService, grpcUrl.identity, { token: accessToken }).getTenant({})).slug, account.tenantSlug);
  });

  test("a service that keeps crashing stops everything, saying which and why, with a non-zero exit", async () => {
    // Someone takes content's port while it is down: every restart fails to listen.
    const port = Number(new URL(grpcUrl.content).port);
    process.kill(platform.servicePid("content"), "SIGKILL");
    let squatter: Server | undefined;
    const deadline = Date.now() + 5000;
    while (!squatter) {
      squatter = await holdPort(port).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== "EADDRINUSE" || Date.now() > deadline) throw err;
        return undefined;
      });
    }
    try {
      const { code } = await Promise.race([
        platform.exited,
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`npm start still running:\n${platform.output.slice(-4000)}`)), BOUND_MS).unref()),
      ]);
      assert.equal(code, 1);
    } finally {
      await closeServer(squatter);
    }
    assert.match(platform.output, /content was killed by SIGKILL; restarting it in 500 ms \(attempt 1\)/);
    assert.match(platform.output, /content exited with code 1 \(last error: content failed to start: port \d+ is in use.*\); restarting it in 1000 ms \(attempt 2\)/);
    assert.match(platform.output, /platform +ERROR +content crashed 5 times within 60 s, the last time it exited with code 1 \(last error: content failed to start: port \d+ is in use.*\): giving up, stopping everything\./);
    assert.match(platform.output, /stopped; data kept\.\n$/);
    assert.equal(existsSync(path.join(stateDir, "endpoints.json")), false, "the record of the running platform is gone");
    for (const name of NAMES) assert.equal(await serving(grpcUrl[name]), false, `${name} stopped`);
  });

  test("a service that cannot start the first time stops npm start at once, with its reason", async () => {
    // Graph's port is taken before the start: restarting would fail the same way.
    const graphPort = Number(new URL(grpcUrl.graph).port);
    const squatter = await holdPort(graphPort);
    try {
      platform = new Platform(platform.env);
      const { code } = await platform.exited;
      assert.equal(code, 1);
    } finally {
      await closeServer(squatter);
    }
    assert.match(platform.output, new RegExp(`graph exited during start \\(exit code 1: graph failed to start: port ${graphPort} is in use`));
    assert.doesNotMatch(platform.output, /restarting it/);
    assert.doesNotMatch(platform.output, /PromptCraft is up/);
  });
});
