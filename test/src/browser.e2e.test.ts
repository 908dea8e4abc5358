import { afterAll, beforeAll, describe, test } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { chromium, type Browser } from "playwright-core";
import type { RunningService } from "@promptcraft/platform";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { EntityType } from "@promptcraft/proto/promptcraft/content/v1/resources_pb";
import { ContentHarness, ok } from "./content-e2e-helpers.js";
import type { PageCall, PageResult } from "./browser/page.js";

// Browsers are one of the Connect port's users: a page served from one origin calls ContentService
// on the Connect port (another origin) in a real headless Chromium, through @connectrpc/connect-web
// over Connect and gRPC-Web, as a web app would. The page of an origin not in CORS_ALLOWED_ORIGINS
// is refused by the browser itself, and its call never reaches the service.
//
// Needs Debian's chromium (`apt-get install chromium`; .ci/run installs it; CHROMIUM_PATH points
// elsewhere). In CI a missing browser fails the test; on a developer's machine the test is skipped
// with the reason printed.

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const IN_CI = !["", "0", "false"].includes((process.env.CI ?? "").toLowerCase());
const missing = existsSync(CHROMIUM) ? undefined : `no Chromium at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`;
if (missing && !IN_CI) console.warn(`\n*** browser.e2e.test: SKIPPED, ${missing} ***\n`);

// Without the background-networking flags Chromium phones home at start, which fails (and slows
// everything) where only the test's own servers answer.
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** A static web server: one page that loads the bundled client. Its origin is `http://127.0.0.1:<port>`. */
interface WebApp {
  origin: string;
  close(): Promise<void>;
}

async function serveWebApp(bundle: string): Promise<WebApp> {
  const server = http.createServer((req, res) => {
    if (req.url === "/") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end(`<!doctype html><meta charset="utf-8"><title>PromptCraft web app</title><script src="/app.js"></script>`);
    } else if (req.url === "/app.js") {
      res.writeHead(200, { "content-type": "text/javascript; charset=utf-8" });
      res.end(bundle);
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The page's client code, bundled for the browser as a web app's build would. */
async function bundlePage(): Promise<string> {
  const result = await build({
    entryPoints: [fileURLToPath(new URL("./browser/page.js", import.meta.url))],
    bundle: true,
    format: "iife",
    platform: "browser",
    target: "chrome120",
    write: false,
    logLevel: "silent",
  });
  return result.outputFiles[0]!.text;
}

/** GetEntity calls the service has handled, whatever their outcome. */
async function getEntityCalls(service: RunningService): Promise<number> {
  const { values } = await service.metrics.registry.getSingleMetric("grpc_server_handled_total")!.get();
  return values.filter((v) => v.labels.grpc_method === "GetEntity").reduce((sum, v) => sum + v.value, 0);
}

describe("a web app on another origin calls the Connect port from Chromium", { skip: !IN_CI && missing !== undefined }, () => {
  const h = new ContentHarness();
  let browser: Browser;
  let allowed: WebApp;
  let other: WebApp;
  let token: string;
  let entityId: string;
  const title = `Seen from a browser ${randomUUID().slice(0, 8)}`;

  beforeAll(async () => {
    if (missing) throw new Error(`the browser test needs Chromium in CI: ${missing}`);
    const bundle = await bundlePage();
    allowed = await serveWebApp(bundle);
    other = await serveWebApp(bundle);
    await h.start({ CORS_ALLOWED_ORIGINS: allowed.origin });
    const t = await h.tenantWith(["editor"]);
    token = t.users[0]!.token;
    entityId = ok(await h.call("grpc", ContentService.method.createEntity, { entity: { type: EntityType.TEMPLATE, title, content: { template: "Hi" } } }, token)).id;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  });

  afterAll(async () => {
    await browser?.close();
    await h.close();
    await allowed?.close();
    await other?.close();
  });

  /** Opens the web app of `app` in a fresh browser context and calls GetEntity from its page. */
  async function fromPage(app: WebApp, call: Omit<PageCall, "baseUrl" | "token">): Promise<{ result: PageResult; console: string[] }> {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      const console: string[] = [];
      page.on("console", (message) => console.push(message.text()));
      await page.goto(`${app.origin}/`);
      const full: PageCall = { ...call, baseUrl: `http://127.0.0.1:${h.content.connectPort}`, token };
      const result = await page.evaluate((c) => (globalThis as unknown as { getEntity(c: PageCall): Promise<PageResult> }).getEntity(c), full);
      return { result, console };
    } finally {
      await context.close();
    }
  }

  for (const protocol of ["connect", "grpc-web"] as const) {
    test(`${protocol}: the allowed origin's page reads the entity and the headers the service exposes`, async () => {
      const requestId = randomUUID();
      const { result } = await fromPage(allowed, { protocol, entityId, requestId });
      assert.deepEqual(result, { ok: true, id: entityId, title, requestId });
    });

    test(`${protocol}: the allowed origin's page sees an error's code and details`, async () => {
      const requestId = randomUUID();
      const { result } = await fromPage(allowed, { protocol, entityId: randomUUID(), requestId });
      assert.ok(!result.ok, "the call failed");
      assert.equal(result.code, "NotFound");
      assert.equal(result.reason, "RESOURCE_NOT_FOUND", "ErrorInfo arrived");
      // The error's metadata: response headers (Connect), plus trailers (gRPC-Web) which repeat it.
      assert.deepEqual(new Set(result.requestId?.split(", ")), new Set([requestId]));
    });

    test(`${protocol}: another origin's page is refused by the browser and its call never reaches the service`, async () => {
      const before = await getEntityCalls(h.content);
      const { result, console } = await fromPage(other, { protocol, entityId, requestId: randomUUID() });
      assert.ok(!result.ok, "the call failed");
      assert.equal(result.message, "Failed to fetch", "fetch itself was refused");
      assert.ok(
        console.some((line) => line.includes(`from origin '${other.origin}' has been blocked by CORS policy`)),
        `Chromium says CORS refused it:\n${console.join("\n")}`,
      );
      assert.equal(await getEntityCalls(h.content), before, "no GetEntity call reached the service");
    });
  }
});
