// Interop tier: our gRPC port against an independent gRPC implementation (C-core, through Debian's
// python3-grpcio), the way grpcurl, ghz and generated stubs in other languages use it. Needs that
// client installed, so it runs with `npm run test:interop` (CI installs it), not in `npm test`.
import { test, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createLogger, serve, startServer, type RunningServer } from "@promptcraft/platform";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";

const PYTHON = process.env.INTEROP_PYTHON ?? "/usr/bin/python3";
const CLIENT = fileURLToPath(new URL("../../interop/c_core_client.py", import.meta.url));

let server: RunningServer;

beforeAll(async () => {
  server = await startServer({
    name: "interop",
    host: "127.0.0.1",
    grpcPort: 0,
    connectPort: 0,
    services: [serve(ContentService, { getEntity: async (request) => ({ id: request.entityId }) })],
    log: createLogger("interop", "silent"),
  });
});
afterAll(async () => {
  await server.close();
});

interface ClientResult {
  health: number;
  reflection_v1: string[];
  reflection_v1alpha: string[];
  error: { code: string; message: string; request_id: string | null; status_details_bytes: number; mentions_field: boolean } | null;
}

test("a C-core client sees health, reflection (v1 and v1alpha) and rich errors", async () => {
  const { stdout } = await promisify(execFile)(PYTHON, [CLIENT, `127.0.0.1:${server.grpcPort}`, ContentService.typeName, "GetEntity"]);
  const result = JSON.parse(stdout) as ClientResult;
  assert.equal(result.health, 1, "SERVING");
  for (const names of [result.reflection_v1, result.reflection_v1alpha]) {
    assert.ok(names.includes(ContentService.typeName), `reflection lists ${ContentService.typeName}: ${names.join(", ")}`);
    assert.ok(names.includes("grpc.health.v1.Health"));
  }
  assert.ok(result.error, "the invalid request failed");
  assert.equal(result.error.code, "INVALID_ARGUMENT");
  assert.ok(result.error.status_details_bytes > 0, "grpc-status-details-bin present");
  assert.ok(result.error.mentions_field, "BadRequest names entity_id");
  assert.match(result.error.request_id ?? "", /^[0-9a-f-]{36}$/);
});
