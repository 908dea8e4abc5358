import { test, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { createRequire } from "node:module";
import { createServiceClient } from "@promptcraft/client";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { EntityType } from "@promptcraft/proto/promptcraft/content/v1/resources_pb";
import { TcpProxy } from "@promptcraft/testing";
import { IdentityHarness } from "./identity-e2e-helpers.js";
import { HealthWatch, Load, ServingStatus, summary, until } from "./outage-helpers.js";

/**
 * Issue 9, item 8: logs are JSON lines, and quiet under repeated failure. A content process (its
 * built main.js, as containers run it) loses its database and identity — both behind TCP proxies
 * the test cuts — while calls with access tokens and with API keys keep coming. Every line it
 * writes, on stdout and stderr, must be JSON, and there must be far fewer lines than failed calls.
 */

const require = createRequire(import.meta.url);
const main = require.resolve("@promptcraft/content").replace(/index\.js$/, "main.js");

const h = new IdentityHarness();
let database: TcpProxy;
let databaseUrl: string;
let identity: TcpProxy;

beforeAll(async () => {
  await h.start();
  ({ proxy: database, url: databaseUrl } = await TcpProxy.forUrl(process.env.DATABASE_URL!));
  identity = await TcpProxy.start({ host: "127.0.0.1", port: h.identity.grpcPort });
});
afterAll(async () => {
  await database?.close();
  await identity?.close();
  await h.close();
});

interface Spawned {
  child: ChildProcess;
  lines: { stream: "stdout" | "stderr"; text: string }[];
  grpcPort: number;
  connectPort: number;
}

async function spawnContent(databaseUrl: string): Promise<Spawned> {
  const child = spawn(process.execPath, [main], {
    env: {
      PATH: process.env.PATH ?? "",
      DATABASE_URL: databaseUrl,
      IDENTITY_URL: `http://127.0.0.1:${identity.port}`,
      GRPC_PORT: "0",
      CONNECT_PORT: "0",
      LOG_LEVEL: "info",
      DB_POOL_MAX: "4",
      DB_ACQUIRE_TIMEOUT_MS: "1000",
      DB_PROBE_INTERVAL_MS: "200",
    },
  });
  const lines: Spawned["lines"] = [];
  for (const stream of ["stdout", "stderr"] as const) {
    let rest = "";
    child[stream].on("data", (chunk: Buffer) => {
      const parts = (rest + chunk.toString()).split("\n");
      rest = parts.pop()!;
      for (const text of parts) lines.push({ stream, text });
    });
    child[stream].on("end", () => rest && lines.push({ stream, text: rest }));
  }
  let ports: { grpcPort: number; connectPort: number } | undefined;
  await until("the service logs `serving`", () => {
    if (child.exitCode !== null) throw new Error(`content exited with ${child.exitCode}: ${lines.map((l) => l.text).join("\n")}`);
    const serving = lines.find((l) => l.text.includes('"msg":"serving"'));
    if (serving) ports = JSON.parse(serving.text) as { grpcPort: number; connectPort: number };
    return ports !== undefined;
  });
  return { child, lines, ...ports! };
}

test("a service that loses its database and identity under load logs JSON lines only, far fewer than its failed calls", async () => {
  const editor = (await h.tenantWith(["editor"])).users[0]!;
  const content = await spawnContent(databaseUrl);
  let exited: Promise<number | null> | undefined;
  const watch = new HealthWatch(content.grpcPort);
  const grpc = createServiceClient(ContentService, `http://127.0.0.1:${content.grpcPort}`, { token: editor.token });
  const connect = createServiceClient(ContentService, `http://127.0.0.1:${content.connectPort}`, { token: editor.token, protocol: "connect" });
  const readId = (await grpc.createEntity({ entity: { type: EntityType.CONTEXT, title: "read me", content: { text: "x" } } })).id;
  const load = new Load({
    "token write": () => grpc.createEntity({ entity: { type: EntityType.CONTEXT, title: `w-${randomUUID()}`, content: { text: "x" } }, requestId: randomUUID() }),
    "token read": () => connect.getEntity({ entityId: readId }),
  });
  // Unknown API keys: every call asks identity (nothing cached), so each one meets identity's absence.
  const withKey = (client: typeof grpc) => () => client.getEntity({ entityId: readId }, { headers: { authorization: `Bearer pck_${randomBytes(24).toString("base64url")}` } });
  const keyLoad = new Load({
    "api key grpc": withKey(createServiceClient(ContentService, `http://127.0.0.1:${content.grpcPort}`)),
    "api key connect": withKey(createServiceClient(ContentService, `http://127.0.0.1:${content.connectPort}`, { protocol: "connect" })),
  });
  try {
    load.start();
    await until("calls succeed before the outage", () => load.allSucceededSince(0));

    await Promise.all([database.cut(), identity.cut()]);
    keyLoad.start();
    await until("health reports NOT_SERVING", () => watch.last === ServingStatus.NOT_SERVING);
    await until("hundreds of calls fail", () => load.failures().length + keyLoad.failures().length >= 300 && load.failures().length >= 20);
    await keyLoad.stop();

    await Promise.all([database.restore(), identity.restore()]);
    await until("health reports SERVING again", () => watch.recovered);
    const back = load.mark();
    await until("calls succeed again", () => load.allSucceededSince(back));
    await load.stop();

    await watch.close();
    exited = new Promise((resolve) => content.child.once("exit", (code) => resolve(code)));
    content.child.kill("SIGTERM");
    assert.equal(await exited, 0, "stops cleanly");

    assert.deepEqual(load.unexpectedFailures(["database"]), [], summary(load.outcomes));
    assert.deepEqual(keyLoad.unexpectedFailures(["identity"]), [], summary(keyLoad.outcomes));
    const notJson = content.lines.filter((l) => !isJsonObject(l.text));
    assert.deepEqual(notJson, [], "every line is a JSON object");
    const failed = load.failures().length + keyLoad.failures().length;
    console.log(`${failed} failed calls, ${content.lines.length} log lines`);
    assert.ok(content.lines.length * 10 < failed, `${content.lines.length} lines for ${failed} failed calls:\n${content.lines.map((l) => l.text).join("\n")}`);
    assert.deepEqual(
      content.lines.filter((l) => (JSON.parse(l.text) as { level: number }).level >= 50),
      [],
      "nothing is logged as an error (no INTERNAL)",
    );
  } finally {
    await keyLoad.stop();
    await load.stop();
    await watch.close();
    if (content.child.exitCode === null) content.child.kill("SIGKILL");
    await Promise.all([database.restore(), identity.restore()]);
  }
});

function isJsonObject(text: string): boolean {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === "object" && value !== null && !Array.isArray(value);
  } catch {
    return false;
  }
}
