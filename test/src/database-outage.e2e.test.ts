import { afterAll, beforeAll, describe, test } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { createServiceClient } from "@promptcraft/client";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { EntityType } from "@promptcraft/proto/promptcraft/content/v1/resources_pb";
import { Health } from "@promptcraft/proto/grpc/health/v1/health_pb";
import { TcpProxy } from "@promptcraft/testing";
import { ContentHarness, type TestUser } from "./content-e2e-helpers.js";
import { HealthWatch, Load, ServingStatus, summary, until } from "./outage-helpers.js";

/**
 * Issue 9, item 1: a database outage is UNAVAILABLE (DEPENDENCY_UNAVAILABLE, RetryInfo), never
 * INTERNAL; readiness turns NOT_SERVING while the database is unreachable and SERVING again after,
 * without a restart; nothing acknowledged is lost. Content (the richest service) reaches the
 * database through a TCP proxy the test cuts — on both engines — and, on PostgreSQL, its backends
 * are also terminated with `pg_terminate_backend`.
 */

const KIND = process.env.PROMPTCRAFT_TEST_DB_KIND;
const h = new ContentHarness();
let proxy: TcpProxy;
let editor: TestUser;
let tenantId: string;
let readId: string;

beforeAll(async () => {
  const database = await TcpProxy.forUrl(process.env.DATABASE_URL!);
  proxy = database.proxy;
  // Short bounds so that the outage shows quickly; the defaults are 5 s and 2 s.
  await h.start({ DATABASE_URL: database.url, DB_POOL_MAX: "4", DB_ACQUIRE_TIMEOUT_MS: "1000", DB_PROBE_INTERVAL_MS: "200" });
  const t = await h.tenantWith(["editor"]);
  tenantId = t.tenantId;
  editor = t.users[0]!;
  const client = createServiceClient(ContentService, `http://127.0.0.1:${h.content.grpcPort}`, { token: editor.token });
  readId = (await client.createEntity({ entity: { type: EntityType.CONTEXT, title: "read me", content: { text: "x" } } })).id;
});
afterAll(async () => {
  await h.close();
  await proxy.close();
});

/** Writes (CreateEntity) and reads (GetEntity) over gRPC and over Connect; acknowledged writes are kept. */
function contentLoad(acknowledged: string[]): Load {
  const grpc = createServiceClient(ContentService, `http://127.0.0.1:${h.content.grpcPort}`, { token: editor.token });
  const connect = createServiceClient(ContentService, `http://127.0.0.1:${h.content.connectPort}`, { token: editor.token, protocol: "connect" });
  const write = (client: typeof grpc) => async () => {
    const created = await client.createEntity({ entity: { type: EntityType.CONTEXT, title: `w-${randomUUID()}`, content: { text: "x" } }, requestId: randomUUID() });
    acknowledged.push(created.id);
  };
  const read = (client: typeof grpc) => () => client.getEntity({ entityId: readId });
  return new Load({ "grpc write": write(grpc), "connect write": write(connect), "grpc read": read(grpc), "connect read": read(connect) });
}

async function servingStatuses(): Promise<ServingStatus[]> {
  const health = createServiceClient(Health, `http://127.0.0.1:${h.content.grpcPort}`);
  return Promise.all(["", ContentService.typeName].map(async (service) => (await health.check({ service })).status));
}

async function persisted(ids: readonly string[]): Promise<number> {
  if (ids.length === 0) return 0;
  const { rows } = await h.db.raw<{ rows: { n: number }[] }>("select count(*)::int as n from entity where tenant_id = ? and id = any(?::uuid[])", [tenantId, [...ids]]);
  return rows[0]!.n;
}

describe("a database outage under load (content, gRPC and Connect)", () => {
  test("the proxy to the database is cut, then restored: failures are UNAVAILABLE with RetryInfo, health NOT_SERVING then SERVING, acknowledged writes kept", async () => {
    const acknowledged: string[] = [];
    const load = contentLoad(acknowledged);
    const watch = new HealthWatch(h.content.grpcPort);
    const serviceWatch = new HealthWatch(h.content.grpcPort, ContentService.typeName);
    try {
      load.start();
      await until("every worker succeeds before the cut", () => load.allSucceededSince(0, 5));

      await proxy.cut();
      await until("health reports NOT_SERVING", () => watch.last === ServingStatus.NOT_SERVING && serviceWatch.last === ServingStatus.NOT_SERVING);
      const cutAt = load.mark();
      // Several failures each: the first ones meet lost connections, later ones refused connects
      // and the pool's acquire timeout.
      await until("calls of every worker fail while the database is away", () =>
        ["grpc write", "connect write", "grpc read", "connect read"].every((w) => load.outcomes.filter((o) => o.worker === w && !o.ok && o.seq >= cutAt).length >= 3),
      );
      assert.equal(watch.last, ServingStatus.NOT_SERVING, "still NOT_SERVING while cut");

      await proxy.restore();
      await until("health reports SERVING again", () => watch.recovered && serviceWatch.recovered);
      const back = load.mark();
      await until("every worker succeeds again", () => load.allSucceededSince(back, 5));
      await load.stop();

      const failures = load.failures();
      console.log(`${load.outcomes.length - failures.length} calls succeeded, ${failures.length} failed, ${acknowledged.length} writes acknowledged`);
      assert.ok(failures.length > 0);
      assert.deepEqual(load.unexpectedFailures(["database"]), [], summary(load.outcomes));
      assert.equal(await persisted(acknowledged), acknowledged.length, "every acknowledged write is in the database");
      assert.deepEqual(await servingStatuses(), [ServingStatus.SERVING, ServingStatus.SERVING]);
    } finally {
      await load.stop();
      await watch.close();
      await serviceWatch.close();
      await proxy.restore();
    }
  });

  test(
    "PostgreSQL only (the embedded engine is one session with no backends to terminate; the proxy cut above covers it): the service's backends are terminated with pg_terminate_backend",
    { skip: KIND === "embedded" },
    async () => {
      const acknowledged: string[] = [];
      const load = contentLoad(acknowledged);
      try {
        load.start();
        await until("every worker succeeds first", () => load.allSucceededSince(0));
        let terminated = 0;
        // The service's backends are those whose client port is one of the proxy's upstream
        // connections: other test files run content services on this database too.
        for (let round = 0; round < 200 && load.failures().length < 8; round++) {
          const { rows } = await h.db.raw<{ rows: { n: number }[] }>(
            "select count(*) filter (where pg_terminate_backend(pid))::int as n from pg_stat_activity where datname = current_database() and client_port = any(?::int[])",
            [proxy.upstreamPorts()],
          );
          terminated += rows[0]!.n;
          await sleep(25);
        }
        const back = load.mark();
        await until("every worker succeeds after the terminations", () => load.allSucceededSince(back));
        await load.stop();

        console.log(`${terminated} backends terminated; ${load.outcomes.length} calls, ${load.failures().length} failed`);
        assert.ok(terminated > 0, "backends were terminated");
        assert.ok(load.failures().length > 0, `calls failed:\n${summary(load.outcomes)}`);
        assert.deepEqual(load.unexpectedFailures(["database"]), [], summary(load.outcomes));
        assert.equal(await persisted(acknowledged), acknowledged.length, "every acknowledged write is in the database");
        await until("health reports SERVING", async () => (await servingStatuses()).every((s) => s === ServingStatus.SERVING));
      } finally {
        await load.stop();
      }
    },
  );
});
