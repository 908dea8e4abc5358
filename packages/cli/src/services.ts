import { loadConfig } from "@promptcraft/platform";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { z } from "zod";

/** The five services with their default ports (brief §5): gRPC 5005x, Connect 5105x. */
export const SERVICES = [
  { name: "identity", grpcPort: 50051, connectPort: 51051 },
  { name: "content", grpcPort: 50052, connectPort: 51052 },
  { name: "graph", grpcPort: 50053, connectPort: 51053 },
  { name: "search", grpcPort: 50054, connectPort: 51054 },
  { name: "analytics", grpcPort: 50055, connectPort: 51055 },
] as const;

export type ServiceInfo = (typeof SERVICES)[number];
export type ServiceName = ServiceInfo["name"];

/** Root of the repository (this file is packages/cli/dist/services.js once built). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

/** The built entry point of a service, the same file containers run. */
export function serviceMain(name: string): string {
  return path.join(REPO_ROOT, "services", name, "dist", "src", "main.js");
}

/** Where `npm start` keeps its state (embedded data, demo account, endpoints): `PROMPTCRAFT_STATE_DIR`, else `.promptcraft/`. */
export function stateDir(env: NodeJS.ProcessEnv): string {
  return env.PROMPTCRAFT_STATE_DIR ? path.resolve(env.PROMPTCRAFT_STATE_DIR) : path.join(REPO_ROOT, ".promptcraft");
}

/** One service of the platform: where `npm start` runs it and how a client reaches it. */
export interface ServiceEndpoint {
  name: ServiceName;
  /** The interface it binds to (`HOST`). */
  bindHost: string;
  grpcPort: number;
  connectPort: number;
  /** Its gRPC URL for clients and peers, e.g. `http://127.0.0.1:50051` (`<SERVICE>_URL` when set). */
  url: string;
  /** `host:port` of its gRPC port, as grpcurl takes it. */
  grpcAddress: string;
  /** Base URL of its Connect / gRPC-Web port. */
  connectUrl: string;
}

// Ports below 1: npm start hands every service its peers' URLs before any listens.
const port = z.coerce.number().int().min(1).max(65535);
const EndpointEnv = z.object({
  HOST: z.string().min(1).default("127.0.0.1"),
  ...Object.fromEntries(
    SERVICES.flatMap((s) => [
      [envName(s.name, "GRPC_PORT"), port.default(s.grpcPort)],
      [envName(s.name, "CONNECT_PORT"), port.default(s.connectPort)],
      [envName(s.name, "URL"), z.url({ protocol: /^https?$/, error: "must be an http(s):// URL" }).optional()],
    ]),
  ),
});

function envName(service: string, suffix: string): string {
  return `${service.toUpperCase()}_${suffix}`;
}

/**
 * Every service's endpoints, from the variables `npm start` reads: `HOST`, `<SERVICE>_GRPC_PORT`,
 * `<SERVICE>_CONNECT_PORT`; an explicit `<SERVICE>_URL` (e.g. `IDENTITY_URL`) wins for the URL.
 * The one derivation both `npm start` (to listen and to tell each service its peers) and every
 * client command (login, tenant create, user create) use.
 *
 * `running` are the endpoints an `npm start` of this checkout recorded ({@link readRunningEndpoints}):
 * a client in another shell, without the variables of the shell that started the platform, finds
 * the platform there. Variables set in the client's own environment still come first.
 */
export function serviceEndpoints(env: NodeJS.ProcessEnv, running?: RunningEndpoints): ServiceEndpoint[] {
  const config = loadConfig(EndpointEnv, env) as Record<string, unknown> & { HOST: string };
  // A server bound to every interface is dialled on loopback.
  const host = ["0.0.0.0", "::"].includes(config.HOST) ? "127.0.0.1" : config.HOST;
  const hostPart = host.includes(":") ? `[${host}]` : host;
  return SERVICES.map((s) => {
    const grpcPort = config[envName(s.name, "GRPC_PORT")] as number;
    const connectPort = config[envName(s.name, "CONNECT_PORT")] as number;
    const derived = { url: `http://${hostPart}:${grpcPort}`, connectUrl: `http://${hostPart}:${connectPort}` };
    const explicit = config[envName(s.name, "URL")] as string | undefined;
    const fromEnv = env.HOST !== undefined || env[envName(s.name, "GRPC_PORT")] !== undefined;
    const recorded = !explicit && !fromEnv ? running?.services[s.name] : undefined;
    const url = explicit ?? recorded?.url ?? derived.url;
    return {
      name: s.name,
      bindHost: config.HOST,
      grpcPort,
      connectPort,
      url,
      grpcAddress: new URL(url).host,
      connectUrl: recorded?.connectUrl ?? derived.connectUrl,
    };
  });
}

const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]"]);

/**
 * The `<SERVICE>_URL` variables that point somewhere other than where `npm start` would run that
 * service, as messages: a client command in the same shell would follow the variable, not the platform.
 */
export function conflictingUrls(env: NodeJS.ProcessEnv): string[] {
  const unset = Object.fromEntries(SERVICES.map((s) => [envName(s.name, "URL"), undefined]));
  const served = serviceEndpoints({ ...env, ...unset });
  return serviceEndpoints(env).flatMap((e, i) => {
    const given = new URL(e.url);
    const ours = new URL(served[i]!.url);
    const sameHost = given.hostname === ours.hostname || (LOOPBACK.has(given.hostname) && LOOPBACK.has(ours.hostname));
    return sameHost && given.port === ours.port
      ? []
      : [`${envName(e.name, "URL")}=${e.url} is not where npm start runs ${e.name} (${ours.origin}): unset it, or move ${e.name} with ${envName(e.name, "GRPC_PORT")} / HOST`];
  });
}

/** The gRPC URL of one service for a client command: {@link serviceEndpoints} with the running platform's record. */
export function clientUrl(name: ServiceName, env: NodeJS.ProcessEnv): string {
  return serviceEndpoints(env, readRunningEndpoints(stateDir(env))).find((e) => e.name === name)!.url;
}

/** What a running `npm start` records in its state directory (`endpoints.json`). */
export interface RunningEndpoints {
  /** The supervisor's process id: a record whose process is gone is ignored. */
  pid: number;
  services: Partial<Record<ServiceName, { url: string; connectUrl: string }>>;
}

const ENDPOINTS_FILE = "endpoints.json";

/** Records the endpoints of the platform this process runs, for client commands in other shells. */
export function recordRunningEndpoints(dir: string, endpoints: readonly ServiceEndpoint[]): void {
  const record: RunningEndpoints = {
    pid: process.pid,
    services: Object.fromEntries(endpoints.map((e) => [e.name, { url: e.url, connectUrl: e.connectUrl }])),
  };
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, ENDPOINTS_FILE), `${JSON.stringify(record, null, 2)}\n`);
}

/** Removes this process's record (when the platform stops). */
export function forgetRunningEndpoints(dir: string): void {
  if (readRunningEndpoints(dir)?.pid === process.pid) rmSync(path.join(dir, ENDPOINTS_FILE), { force: true });
}

/** The record of an `npm start` still running, or undefined (none, unreadable, or its process gone). */
export function readRunningEndpoints(dir: string): RunningEndpoints | undefined {
  let record: RunningEndpoints;
  try {
    record = JSON.parse(readFileSync(path.join(dir, ENDPOINTS_FILE), "utf8")) as RunningEndpoints;
  } catch {
    return undefined;
  }
  if (!Number.isInteger(record.pid) || typeof record.services !== "object" || record.services === null) return undefined;
  try {
    process.kill(record.pid, 0);
  } catch (err) {
    // EPERM: alive, but another user's.
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return undefined;
  }
  return record;
}
