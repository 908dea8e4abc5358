import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import * as http from "node:http";
import * as http2 from "node:http2";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { createLogger } from "./logger.js";
import { serve } from "./handlers.js";
import { startServer, type RunningServer } from "./server.js";
import { ConfigError, loadConfig, serviceConfig } from "./config.js";
import type { CorsOptions } from "./cors.js";

// The CORS protocol as the Connect port speaks it, on the wire (HTTP/1.1 as browsers use it, and
// h2c); the browser itself is exercised by test/src/browser.e2e.test.ts.

const ENTITY_ID = "6f1c1b1e-8d1a-4a57-9a0f-3f5b8c1d2e4f";
const APP = "http://localhost:5173";
const OTHER = "https://evil.example";
const METHOD_PATH = `/${ContentService.typeName}/GetEntity`;

const handlers = serve(ContentService, { getEntity: async (request) => ({ id: request.entityId }) });

async function serverWith(cors: CorsOptions | undefined): Promise<RunningServer> {
  return startServer({
    name: "cors",
    host: "127.0.0.1",
    grpcPort: 0,
    connectPort: 0,
    services: [handlers],
    log: createLogger("cors", "silent"),
    ...(cors ? { cors } : {}),
  });
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(port: number, method: string, path: string, headers: Record<string, string>, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, method, path, headers }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (text += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** What a browser sends before a Connect or gRPC-Web POST with a bearer token. */
const preflight = (origin: string, headers = "authorization,connect-protocol-version,content-type") => ({
  origin,
  "access-control-request-method": "POST",
  "access-control-request-headers": headers,
});

const connectCall = (origin?: string) =>
  ["POST", METHOD_PATH, { "content-type": "application/json", ...(origin ? { origin } : {}) }, JSON.stringify({ entityId: ENTITY_ID })] as const;

const corsHeaders = (headers: http.IncomingHttpHeaders) => Object.keys(headers).filter((h) => h.startsWith("access-control-"));
const list = (value: string | string[] | undefined) => String(value ?? "").split(",").map((s) => s.trim().toLowerCase());

describe("CORS on the Connect port, origins listed", () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await serverWith({ allowedOrigins: [APP, "http://127.0.0.1:5173"], maxAgeSeconds: 600 });
  });
  afterAll(async () => {
    await server.close();
  });

  test("a preflight from an allowed origin gets 204 with what Connect and gRPC-Web need", async () => {
    const res = await request(server.connectPort, "OPTIONS", METHOD_PATH, preflight(APP));
    assert.equal(res.status, 204);
    assert.equal(res.headers["access-control-allow-origin"], APP);
    assert.deepEqual(list(res.headers["access-control-allow-methods"]), ["post", "get"]);
    const allowed = list(res.headers["access-control-allow-headers"]);
    for (const header of ["authorization", "content-type", "connect-protocol-version", "connect-timeout-ms", "x-grpc-web", "x-user-agent", "grpc-timeout", "x-request-id"]) {
      assert.ok(allowed.includes(header), `${header} allowed: ${allowed.join(", ")}`);
    }
    assert.equal(res.headers["access-control-max-age"], "600");
    assert.equal(res.headers["access-control-allow-credentials"], undefined, "no cookies: credentials are never allowed");
    assert.equal(res.headers.vary, "Origin");
  });

  test("a preflight from another origin gets 403 and no CORS header", async () => {
    const res = await request(server.connectPort, "OPTIONS", METHOD_PATH, preflight(OTHER));
    assert.equal(res.status, 403);
    assert.deepEqual(corsHeaders(res.headers), []);
    assert.equal(res.headers.vary, "Origin");
  });

  test("a call from an allowed origin is answered with the origin and the exposed headers", async () => {
    const res = await request(server.connectPort, ...connectCall(APP));
    assert.equal(res.status, 200);
    assert.equal((JSON.parse(res.body) as { id: string }).id, ENTITY_ID);
    assert.equal(res.headers["access-control-allow-origin"], APP);
    const exposed = list(res.headers["access-control-expose-headers"]);
    for (const header of ["grpc-status", "grpc-message", "grpc-status-details-bin", "x-request-id"]) {
      assert.ok(exposed.includes(header), `${header} exposed: ${exposed.join(", ")}`);
    }
  });

  test("a call from another origin carries no CORS header, so the browser hides the answer", async () => {
    const res = await request(server.connectPort, ...connectCall(OTHER));
    assert.deepEqual(corsHeaders(res.headers), []);
  });

  test("a call without Origin (gRPC, curl, servers) is untouched but for Vary", async () => {
    const res = await request(server.connectPort, ...connectCall());
    assert.equal(res.status, 200);
    assert.deepEqual(corsHeaders(res.headers), []);
    assert.equal(res.headers.vary, "Origin");
  });

  test("the origin header counts over h2c too", async () => {
    const session = http2.connect(`http://127.0.0.1:${server.connectPort}`);
    try {
      const headers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
        const stream = session.request({ ":method": "POST", ":path": METHOD_PATH, "content-type": "application/json", origin: APP });
        stream.on("response", resolve);
        stream.on("error", reject);
        stream.end(JSON.stringify({ entityId: ENTITY_ID }));
        stream.resume();
      });
      assert.equal(headers[":status"], 200);
      assert.equal(headers["access-control-allow-origin"], APP);
    } finally {
      session.close();
    }
  });
});

describe("CORS on the Connect port, any origin (*)", () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await serverWith({ allowedOrigins: "*", maxAgeSeconds: 7200 });
  });
  afterAll(async () => {
    await server.close();
  });

  test("every origin is allowed with *, and nothing varies by origin", async () => {
    const pre = await request(server.connectPort, "OPTIONS", METHOD_PATH, preflight(OTHER));
    assert.equal(pre.status, 204);
    assert.equal(pre.headers["access-control-allow-origin"], "*");
    assert.equal(pre.headers.vary, undefined);
    const res = await request(server.connectPort, ...connectCall(OTHER));
    assert.equal(res.headers["access-control-allow-origin"], "*");
  });
});

describe("CORS on the Connect port, by default", () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await serverWith(undefined);
  });
  afterAll(async () => {
    await server.close();
  });

  test("no origin is allowed: a preflight gets 403, a call no CORS header", async () => {
    const pre = await request(server.connectPort, "OPTIONS", METHOD_PATH, preflight(APP));
    assert.equal(pre.status, 403);
    assert.deepEqual(corsHeaders(pre.headers), []);
    const res = await request(server.connectPort, ...connectCall(APP));
    assert.equal(res.status, 200);
    assert.deepEqual(corsHeaders(res.headers), []);
    assert.equal(res.headers.vary, undefined);
  });
});

describe("CORS config", () => {
  const schema = serviceConfig({ grpcPort: 1, connectPort: 2 }, {});
  const env = (origins?: string) => ({ DATABASE_URL: "postgres://u@localhost:5432/db", ...(origins === undefined ? {} : { CORS_ALLOWED_ORIGINS: origins }) });

  test("none by default; a list of exact origins; * alone", () => {
    assert.deepEqual(loadConfig(schema, env()).CORS_ALLOWED_ORIGINS, []);
    assert.equal(loadConfig(schema, env()).CORS_MAX_AGE_S, 7200);
    assert.deepEqual(loadConfig(schema, env(" https://app.example.com, http://localhost:5173 ,")).CORS_ALLOWED_ORIGINS, [
      "https://app.example.com",
      "http://localhost:5173",
    ]);
    assert.equal(loadConfig(schema, env("*")).CORS_ALLOWED_ORIGINS, "*");
  });

  test("what a browser never sends as an origin is refused, naming the entry", () => {
    for (const bad of ["https://app.example.com/", "https://app.example.com/app", "app.example.com", "https://APP.example.com", "http://localhost:80", "ftp://x.example", "*,https://app.example.com"]) {
      assert.throws(
        () => loadConfig(schema, env(bad)),
        (err: unknown) => err instanceof ConfigError && /CORS_ALLOWED_ORIGINS/.test(err.message),
        bad,
      );
    }
  });
});
