import { test, describe } from "vitest";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { createLogger } from "./logger.js";
import { DatabaseHealth } from "./database-health.js";
import { HealthState, ServingStatus } from "./health.js";

/** A probe the test switches between reachable and not, counting its runs. */
function fakeProbe() {
  const state = { up: true, runs: 0 };
  const probe = async () => {
    state.runs++;
    if (!state.up) throw Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
  };
  return { state, probe };
}

async function until(what: string, condition: () => boolean): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (condition()) return;
    await sleep(10);
  }
  throw new Error(`gave up waiting: ${what}`);
}

function serving(services: string[]): HealthState {
  const health = new HealthState();
  for (const s of services) health.set(s, ServingStatus.SERVING);
  return health;
}

const SERVICES = ["", "promptcraft.content.v1.ContentService"];
const log = createLogger("test", "silent");

describe("DatabaseHealth", () => {
  test("a failed probe turns the service NOT_SERVING, a successful one SERVING again; other services keep theirs", async () => {
    const { state, probe } = fakeProbe();
    const health = serving([...SERVICES, "grpc.health.v1.Health"]);
    const watcher = new DatabaseHealth({ probe, intervalMs: 10, log });
    watcher.start(health, SERVICES);
    try {
      state.up = false;
      await until("NOT_SERVING", () => SERVICES.every((s) => health.get(s) === ServingStatus.NOT_SERVING));
      assert.equal(watcher.databaseReachable, false);
      assert.equal(health.get("grpc.health.v1.Health"), ServingStatus.SERVING);
      state.up = true;
      await until("SERVING", () => SERVICES.every((s) => health.get(s) === ServingStatus.SERVING));
      assert.equal(watcher.databaseReachable, true);
    } finally {
      watcher.stop();
    }
  });

  test("a call that met an unreachable database probes at once; the probe, not the call, decides", async () => {
    const { state, probe } = fakeProbe();
    const health = serving(SERVICES);
    const watcher = new DatabaseHealth({ probe, intervalMs: 600_000, log });
    watcher.start(health, SERVICES);
    try {
      watcher.suspect();
      await until("the probe ran", () => state.runs === 1);
      assert.equal(health.get(""), ServingStatus.SERVING, "the database answered: still SERVING");
      state.up = false;
      watcher.suspect();
      await until("NOT_SERVING", () => health.get("") === ServingStatus.NOT_SERVING);
      assert.equal(state.runs, 2);
    } finally {
      watcher.stop();
    }
  });

  test("after stop (shutdown) the status is never changed again", async () => {
    const { state, probe } = fakeProbe();
    const health = serving(SERVICES);
    const watcher = new DatabaseHealth({ probe, intervalMs: 10, log });
    watcher.start(health, SERVICES);
    await until("a probe ran", () => state.runs > 0);
    watcher.stop();
    health.setAll(ServingStatus.NOT_SERVING);
    const runs = state.runs;
    state.up = true;
    watcher.suspect();
    await sleep(50);
    assert.equal(state.runs, runs, "no probe after stop");
    assert.equal(health.get(""), ServingStatus.NOT_SERVING);
  });
});
