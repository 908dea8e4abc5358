import { test } from "vitest";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { ConfigError } from "@promptcraft/platform";
import { clientUrl, conflictingUrls, forgetRunningEndpoints, readRunningEndpoints, recordRunningEndpoints, serviceEndpoints } from "./services.js";

const identity = (env: NodeJS.ProcessEnv, running?: Parameters<typeof serviceEndpoints>[1]) => serviceEndpoints(env, running).find((e) => e.name === "identity")!;

test("endpoints come from HOST and the port variables npm start reads", () => {
  assert.deepEqual(identity({}), {
    name: "identity",
    bindHost: "127.0.0.1",
    grpcPort: 50051,
    connectPort: 51051,
    url: "http://127.0.0.1:50051",
    grpcAddress: "127.0.0.1:50051",
    connectUrl: "http://127.0.0.1:51051",
  });
  const moved = identity({ IDENTITY_GRPC_PORT: "6001", IDENTITY_CONNECT_PORT: "7001" });
  assert.equal(moved.url, "http://127.0.0.1:6001");
  assert.equal(moved.connectUrl, "http://127.0.0.1:7001");
  assert.equal(serviceEndpoints({ IDENTITY_GRPC_PORT: "6001" }).find((e) => e.name === "content")!.url, "http://127.0.0.1:50052", "only identity moved");
  // Bound to every interface, dialled on loopback; an IPv6 address is bracketed.
  const everywhere = identity({ HOST: "0.0.0.0" });
  assert.equal(everywhere.bindHost, "0.0.0.0");
  assert.equal(everywhere.url, "http://127.0.0.1:50051");
  assert.equal(identity({ HOST: "::1" }).grpcAddress, "[::1]:50051");
});

test("an explicit <SERVICE>_URL wins; bad values fail with the variable's name", () => {
  assert.equal(identity({ IDENTITY_URL: "http://identity.internal:443", IDENTITY_GRPC_PORT: "6001" }).url, "http://identity.internal:443");
  assert.throws(() => serviceEndpoints({ IDENTITY_GRPC_PORT: "0" }), (err: Error) => err instanceof ConfigError && /IDENTITY_GRPC_PORT/.test(err.message));
  assert.throws(() => serviceEndpoints({ IDENTITY_URL: "identity:50051" }), (err: Error) => err instanceof ConfigError && /IDENTITY_URL/.test(err.message));
});

test("a client without the variables finds the running platform; its own variables come first", () => {
  const running = { pid: process.pid, services: { identity: { url: "http://127.0.0.1:6001", connectUrl: "http://127.0.0.1:7001" } } };
  assert.equal(identity({}, running).url, "http://127.0.0.1:6001");
  assert.equal(identity({}, running).connectUrl, "http://127.0.0.1:7001");
  assert.equal(identity({ IDENTITY_GRPC_PORT: "6002" }, running).url, "http://127.0.0.1:6002");
  assert.equal(identity({ HOST: "127.0.0.2" }, running).url, "http://127.0.0.2:50051");
  assert.equal(identity({ IDENTITY_URL: "http://127.0.0.1:6003" }, running).url, "http://127.0.0.1:6003");
});

test("the record of a running npm start is read while its process lives, and removed by it", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "promptcraft-endpoints-"));
  try {
    assert.equal(readRunningEndpoints(dir), undefined, "no record");
    recordRunningEndpoints(dir, serviceEndpoints({ IDENTITY_GRPC_PORT: "6001" }));
    assert.equal(readRunningEndpoints(dir)?.services.identity?.url, "http://127.0.0.1:6001");
    assert.equal(clientUrl("identity", { PROMPTCRAFT_STATE_DIR: dir }), "http://127.0.0.1:6001");

    // A supervisor that died without cleaning up (SIGKILL) leaves a record that is ignored.
    const gone = spawnSync(process.execPath, ["-e", "console.log(process.pid)"], { encoding: "utf8" });
    const deadPid = Number(gone.stdout.trim());
    writeFileSync(path.join(dir, "endpoints.json"), JSON.stringify({ pid: deadPid, services: { identity: { url: "http://127.0.0.1:6009", connectUrl: "http://127.0.0.1:7009" } } }));
    assert.equal(readRunningEndpoints(dir), undefined);
    assert.equal(clientUrl("identity", { PROMPTCRAFT_STATE_DIR: dir }), "http://127.0.0.1:50051");
    writeFileSync(path.join(dir, "endpoints.json"), "{ not json");
    assert.equal(readRunningEndpoints(dir), undefined);

    recordRunningEndpoints(dir, serviceEndpoints({}));
    forgetRunningEndpoints(dir);
    assert.equal(readRunningEndpoints(dir), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("npm start refuses a <SERVICE>_URL that points elsewhere than the service it runs", () => {
  assert.deepEqual(conflictingUrls({}), []);
  assert.deepEqual(conflictingUrls({ IDENTITY_URL: "http://localhost:50051" }), [], "loopback is loopback");
  assert.deepEqual(conflictingUrls({ IDENTITY_URL: "http://127.0.0.1:6001", IDENTITY_GRPC_PORT: "6001" }), []);
  const [conflict, ...more] = conflictingUrls({ IDENTITY_URL: "http://127.0.0.1:50051", IDENTITY_GRPC_PORT: "6001" });
  assert.equal(more.length, 0);
  assert.match(conflict ?? "", /^IDENTITY_URL=http:\/\/127\.0\.0\.1:50051 is not where npm start runs identity \(http:\/\/127\.0\.0\.1:6001\)/);
});
