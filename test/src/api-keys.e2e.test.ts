import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { createHash, randomUUID } from "node:crypto";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { DescMessage, DescMethodUnary, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { CREDENTIAL_CACHE_TTL_MS, loadConfig, serve, startService, type RunningService, type ServiceModule } from "@promptcraft/platform";
import { issueAccessToken, type KeyRing } from "@promptcraft/identity";
import { contentService } from "@promptcraft/content";
import { graphService } from "@promptcraft/graph";
import { searchService } from "@promptcraft/search";
import { analyticsService } from "@promptcraft/analytics";
import { withTenant } from "@promptcraft/db";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { GraphService } from "@promptcraft/proto/promptcraft/graph/v1/graph_service_pb";
import { SearchService } from "@promptcraft/proto/promptcraft/search/v1/search_service_pb";
import { AnalyticsService } from "@promptcraft/proto/promptcraft/analytics/v1/analytics_service_pb";
import { AuthService } from "@promptcraft/proto/promptcraft/identity/v1/auth_service_pb";
import { IdentityService } from "@promptcraft/proto/promptcraft/identity/v1/identity_service_pb";
import { ApiKeyState, CredentialType, Role } from "@promptcraft/proto/promptcraft/identity/v1/resources_pb";
import { ErrorInfoSchema } from "@promptcraft/proto/google/rpc/error_details_pb";
import { createServiceClient, ConnectError } from "@promptcraft/client";
import { createTenant, createUser, grpc, grpcUnary } from "@promptcraft/testing";
import { IdentityHarness, microsOf, testServiceEnv } from "./identity-e2e-helpers.js";
import { assertForgedPageTokensRefused } from "./page-tokens.js";
import { badFields, failure, unaryCall } from "./rpc-outcomes.js";

/**
 * API keys end to end (issue 3, items 6 and 7): CRUD and roles on identity, over gRPC and Connect;
 * a key accepted by every service (resolved through identity's IntrospectCredential and cached
 * briefly); revoked, expired and foreign keys refused; and access tokens of a suspended tenant or
 * of a deleted/deactivated user refused by services that read the status themselves.
 */

type Protocol = "grpc" | "connect";
const PROTOCOLS: readonly Protocol[] = ["grpc", "connect"];
/** How long a refusal may take to show after a change: the cache bound plus slack for a slow machine. */
const POLL_DEADLINE_MS = CREDENTIAL_CACHE_TTL_MS + 10_000;

let identity: RunningService;
let keys: KeyRing;
const services = new Map<string, RunningService>();
/** A service started like any other (startService, remote resolution) whose handler echoes ctx.auth. */
let echo: RunningService;

let tenantA: string;
let ownerA: string;
let adminA: string;
let editorA: string;
let viewerA: string;
let tenantB: string;
let adminB: string;

const harness = new IdentityHarness();

beforeAll(async () => {
  const base = { ...testServiceEnv(), DB_POOL_MAX: "2" };
  await harness.start(base);
  identity = harness.identity;
  keys = harness.keys;
  const IDENTITY_URL = harness.url;
  services.set("identity", identity);
  for (const module of [contentService, graphService, searchService, analyticsService] as ServiceModule[]) {
    services.set(module.name, await startService(module, loadConfig(module.config, { ...base, IDENTITY_URL })));
  }
  const echoModule: ServiceModule = {
    name: "content",
    config: contentService.config,
    routes: () => [
      serve(ContentService, {
        getEntity: async (request, ctx) => ({
          id: request.entityId,
          tenantId: ctx.auth?.tenantId ?? "",
          ownerId: ctx.auth?.userId ?? "-",
          title: `${ctx.auth?.kind}|${ctx.auth?.role}|${ctx.auth?.credentialId}`,
        }),
      }),
    ],
  };
  echo = await startService(echoModule, loadConfig(contentService.config, { ...base, IDENTITY_URL }));

  const db = identity.deps.db;
  tenantA = await createTenant(db);
  [ownerA, adminA, editorA, viewerA] = [
    await createUser(db, tenantA, "owner"),
    await createUser(db, tenantA, "admin"),
    await createUser(db, tenantA, "editor"),
    await createUser(db, tenantA, "viewer"),
  ];
  tenantB = await createTenant(db);
  adminB = await createUser(db, tenantB, "admin");
});
afterAll(async () => {
  await echo?.close();
  await Promise.all([...services.values()].map((s) => s.close()));
});

async function tokenFor(tenantId: string, userId: string, role: "owner" | "admin" | "editor" | "viewer"): Promise<string> {
  const issued = await issueAccessToken(keys, { issuer: identity.deps.config.TOKEN_ISSUER, ttlS: 900 }, { tenantId, userId, role, sessionId: randomUUID() });
  return issued.token;
}

type Outcome<T> = { ok: true; value: T } | { ok: false; code: string; reason: string | undefined };

/** One unary call with `bearer`, over gRPC (grpc-js client) or Connect. */
async function call<I extends DescMessage, O extends DescMessage>(
  protocol: Protocol,
  service: RunningService,
  method: DescMethodUnary<I, O>,
  request: MessageInitShape<I>,
  bearer: string | undefined,
): Promise<Outcome<MessageShape<O>>> {
  const metadata: Record<string, string> = bearer === undefined ? {} : { authorization: `Bearer ${bearer}` };
  if (protocol === "grpc") {
    const result = await grpcUnary(`127.0.0.1:${service.grpcPort}`, method, request, { metadata });
    if ("response" in result) return { ok: true, value: result.response };
    return { ok: false, code: grpc.status[result.failure.code], reason: result.failure.errorInfo?.reason };
  }
  const transport = createServiceClient(method.parent, `http://127.0.0.1:${service.connectPort}`, { protocol: "connect" });
  try {
    const fn = (transport as unknown as Record<string, (req: unknown, opts: unknown) => Promise<MessageShape<O>>>)[method.localName]!;
    return { ok: true, value: await fn(request, { headers: metadata }) };
  } catch (e) {
    const err = ConnectError.from(e);
    return { ok: false, code: grpc.status[err.code as number] ?? String(err.code), reason: err.findDetails(ErrorInfoSchema)[0]?.reason };
  }
}

function ok<T>(outcome: Outcome<T>, what = "call"): T {
  if (!outcome.ok) assert.fail(`${what}: expected success, got ${outcome.code} ${outcome.reason ?? ""}`);
  return outcome.value;
}

async function createKey(protocol: Protocol, bearer: string, init: { name?: string; role?: Role; expireMs?: number } = {}) {
  return call(protocol, identity, IdentityService.method.createApiKey, {
    apiKey: {
      displayName: init.name ?? `key-${randomUUID().slice(0, 8)}`,
      role: init.role ?? Role.EDITOR,
      ...(init.expireMs ? { expireTime: timestampFromMs(init.expireMs) } : {}),
    },
  }, bearer);
}

/** Repeats `attempt` until `accept(outcome)` or the deadline; returns the last outcome. */
async function poll<T>(attempt: () => Promise<Outcome<T>>, accept: (o: Outcome<T>) => boolean): Promise<Outcome<T>> {
  const deadline = Date.now() + POLL_DEADLINE_MS;
  for (;;) {
    const outcome = await attempt();
    if (accept(outcome) || Date.now() > deadline) return outcome;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Calls the echo service until `accept(outcome)` or the deadline. */
function pollEcho(protocol: Protocol, bearer: string, accept: (o: Outcome<{ title: string }>) => boolean) {
  return poll(() => call(protocol, echo, ContentService.method.getEntity, { entityId: randomUUID() }, bearer), accept);
}

const refusedWith = (reason: string) => (o: Outcome<unknown>) => !o.ok && o.code === "UNAUTHENTICATED" && o.reason === reason;

describe("API keys: create, get, list, revoke", () => {
  for (const protocol of PROTOCOLS) {
    test(`${protocol}: an admin creates a key; the secret is shown once and stored only as a SHA-256 hash`, async () => {
      const admin = await tokenFor(tenantA, adminA, "admin");
      const expireMs = Date.now() + 3600_000;
      const created = ok(await createKey(protocol, admin, { name: "ci-pipeline", role: Role.EDITOR, expireMs }));
      assert.match(created.secret, /^pck_[A-Za-z0-9_-]{43}$/);
      const key = created.apiKey!;
      assert.equal(key.tenantId, tenantA);
      assert.equal(key.displayName, "ci-pipeline");
      assert.equal(key.role, Role.EDITOR);
      assert.equal(key.state, ApiKeyState.ACTIVE);
      assert.equal(key.creatorId, adminA);
      assert.equal(key.secretPrefix, created.secret.slice(0, 12));
      assert.ok(key.createTime && key.expireTime && !key.revokeTime);

      const rows = await withTenant(identity.deps.db, { service: "identity", tenantId: tenantA }, (trx) =>
        trx.raw<{ rows: { secret_hash: string; prefix: string }[] }>("select secret_hash, prefix from api_key where id = ?", [key.id]),
      );
      assert.equal(rows.rows[0]!.secret_hash, createHash("sha256").update(created.secret).digest("hex"));
      assert.ok(!JSON.stringify(rows.rows).includes(created.secret));

      const fetched = ok(await call(protocol, identity, IdentityService.method.getApiKey, { apiKeyId: key.id }, admin));
      assert.equal(fetched.id, key.id);
      assert.equal(fetched.secretPrefix, key.secretPrefix);
      assert.ok(!JSON.stringify(fetched, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v)).includes(created.secret));

      // The change and its audit event commit together (analytics reads the log).
      const events = await withTenant(identity.deps.db, { service: "analytics", tenantId: tenantA }, (trx) =>
        trx.raw<{ rows: { event_type: string; actor_id: string }[] }>("select event_type, actor_id from event where aggregate_id = ?", [key.id]),
      );
      assert.deepEqual(events.rows, [{ event_type: "identity.api_key.created", actor_id: adminA }]);
    });

    test(`${protocol}: times to the microsecond — expire_time as given, create_time as stored; a retry's expiry compares exactly`, async () => {
      const admin = await tokenFor(tenantA, adminA, "admin");
      const requestId = randomUUID();
      const create = (expireTime: { seconds: bigint; nanos: number }, id = requestId) =>
        unaryCall(IdentityService, identity, protocol, IdentityService.method.createApiKey, {
          apiKey: { displayName: `exact-${protocol}`, role: Role.VIEWER, expireTime },
          requestId: id,
        }, { authorization: `Bearer ${admin}` });
      const expireTime = { seconds: BigInt(Math.floor(Date.now() / 1000) + 3600), nanos: 123_456_789 };
      const created = await create(expireTime);
      assert.ok(created.ok, "CreateApiKey");
      const key = created.res.apiKey!;
      assert.deepEqual([key.expireTime!.seconds, key.expireTime!.nanos], [expireTime.seconds, 123_456_000], "only the nanoseconds below the microsecond go");
      assert.equal(microsOf(key.createTime!), await harness.columnMicros(tenantA, "api_key", "created_at", key.id));
      const fetched = ok(await call(protocol, identity, IdentityService.method.getApiKey, { apiKeyId: key.id }, admin));
      assert.deepEqual([fetched.createTime, fetched.expireTime], [key.createTime, key.expireTime]);
      const introspected = ok(await call(protocol, identity, AuthService.method.introspectCredential, { credential: created.res.secret }, created.res.secret));
      assert.deepEqual(introspected.principal?.expireTime, key.expireTime, "introspection reports the same instant");
      const retry = await create(expireTime);
      assert.ok(retry.ok, "retry");
      assert.equal(retry.res.secret, created.res.secret);
      assert.deepEqual(failure(await create({ ...expireTime, nanos: 123_457_789 })), { code: "ALREADY_EXISTS", reason: "REQUEST_ID_REUSED" }, "one microsecond later is another expiry");
      // Past the Timestamp range (year 9999), or past what a Date holds: the field, never a database error.
      for (const seconds of [253_402_300_800n, 10n ** 13n]) {
        const far = await create({ seconds, nanos: 0 }, randomUUID());
        assert.deepEqual([failure(far).code, badFields(far)], ["INVALID_ARGUMENT", ["api_key.expire_time"]], String(seconds));
      }
    });

    test(`${protocol}: request_id — a retry within 10 minutes gets the same key and secret; later, or for another key, REQUEST_ID_REUSED`, async () => {
      const admin = await tokenFor(tenantA, adminA, "admin");
      const requestId = randomUUID();
      const create = (name: string) =>
        call(protocol, identity, IdentityService.method.createApiKey, { apiKey: { displayName: name, role: Role.VIEWER }, requestId }, admin);
      const name = `retried-${protocol}`;
      const first = ok(await create(name));
      const retry = ok(await create(name));
      assert.equal(retry.apiKey!.id, first.apiKey!.id);
      assert.equal(retry.secret, first.secret, "the lost response's secret, again");
      ok(await call(protocol, echo, ContentService.method.getEntity, { entityId: randomUUID() }, retry.secret), "the secret works");

      const stored = await withTenant(identity.deps.db, { service: "identity", tenantId: tenantA }, (trx) =>
        trx.raw<{ rows: { retry_secret: string; n: number }[] }>(
          "select retry_secret, (select count(*)::int from api_key where tenant_id = ? and name = ?) as n from api_key where id = ?",
          [tenantA, name, first.apiKey!.id],
        ),
      );
      assert.equal(stored.rows[0]!.n, 1, "one key");
      assert.match(stored.rows[0]!.retry_secret, /^aes256gcm:v1:/);
      assert.ok(!stored.rows[0]!.retry_secret.includes(first.secret.slice(4)), "kept encrypted");
      const events = await withTenant(identity.deps.db, { service: "analytics", tenantId: tenantA }, (trx) =>
        trx.raw<{ rows: unknown[] }>("select 1 from event where aggregate_id = ?", [first.apiKey!.id]),
      );
      assert.equal(events.rows.length, 1, "one api_key.created event");

      assert.deepEqual(await create("another"), { ok: false, code: "ALREADY_EXISTS", reason: "REQUEST_ID_REUSED" });
      // Eleven minutes later the secret is gone: the retry says so instead of making a second key.
      await withTenant(identity.deps.db, { service: "identity", tenantId: tenantA }, (trx) =>
        trx.raw("update api_key set created_at = created_at - interval '11 minutes' where id = ?", [first.apiKey!.id]),
      );
      assert.deepEqual(await create(name), { ok: false, code: "ALREADY_EXISTS", reason: "REQUEST_ID_REUSED" });
    });

    test(`${protocol}: roles — viewers and editors cannot manage keys; nobody mints an owner key`, async () => {
      for (const [user, role] of [[viewerA, "viewer"], [editorA, "editor"]] as const) {
        const bearer = await tokenFor(tenantA, user, role);
        const outcome = await createKey(protocol, bearer, { role: Role.VIEWER });
        assert.deepEqual(outcome, { ok: false, code: "PERMISSION_DENIED", reason: "PERMISSION_INSUFFICIENT" }, role);
        const list = await call(protocol, identity, IdentityService.method.listApiKeys, {}, bearer);
        assert.equal(list.ok ? "OK" : list.code, "PERMISSION_DENIED");
      }
      const owner = await tokenFor(tenantA, ownerA, "owner");
      const ownerKey = await createKey(protocol, owner, { role: Role.OWNER });
      assert.equal(ownerKey.ok ? "OK" : ownerKey.code, "INVALID_ARGUMENT");
      assert.equal(ok(await createKey(protocol, owner, { role: Role.ADMIN })).apiKey!.role, Role.ADMIN);
    });

    test(`${protocol}: a key cannot mint a key above its own role, nor manage keys below admin`, async () => {
      const admin = await tokenFor(tenantA, adminA, "admin");
      const editorKey = ok(await createKey(protocol, admin, { role: Role.EDITOR })).secret;
      const byEditorKey = await createKey(protocol, editorKey, { role: Role.ADMIN });
      assert.deepEqual(byEditorKey, { ok: false, code: "PERMISSION_DENIED", reason: "PERMISSION_INSUFFICIENT" });
      const adminKeyCreated = ok(await createKey(protocol, admin, { role: Role.ADMIN }));
      const adminKey = adminKeyCreated.secret;
      const minted = ok(await createKey(protocol, adminKey, { role: Role.VIEWER }));
      assert.equal(minted.apiKey!.creatorId, `api_key:${adminKeyCreated.apiKey!.id}`, "made by a key: creator_id names that key");
    });
  }

  test("ListApiKeys pages newest first with opaque tokens bound to the request", async () => {
    const tenant = await createTenant(identity.deps.db);
    const admin = await tokenFor(tenant, await createUser(identity.deps.db, tenant, "admin"), "admin");
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(ok(await createKey("grpc", admin, { name: `k${i}` })).apiKey!.id);
    const revoked = ids[2]!;
    ok(await call("grpc", identity, IdentityService.method.revokeApiKey, { apiKeyId: revoked }, admin));

    for (const protocol of PROTOCOLS) {
      for (const showInactive of [false, true]) {
        const seen: string[] = [];
        let pageToken = "";
        let pages = 0;
        do {
          const page = ok(await call(protocol, identity, IdentityService.method.listApiKeys, { pageSize: 2, pageToken, showInactive }, admin));
          assert.ok(page.apiKeys.length <= 2);
          seen.push(...page.apiKeys.map((k) => k.id));
          pageToken = page.nextPageToken;
          pages++;
        } while (pageToken !== "" && pages < 10);
        const expected = [...ids].reverse().filter((id) => showInactive || id !== revoked);
        assert.deepEqual(seen, expected, `${protocol} showInactive=${showInactive}`);
      }
    }
    const first = ok(await call("grpc", identity, IdentityService.method.listApiKeys, { pageSize: 2 }, admin));
    const mismatched = await call("grpc", identity, IdentityService.method.listApiKeys, { pageSize: 2, pageToken: first.nextPageToken, showInactive: true }, admin);
    assert.deepEqual(mismatched, { ok: false, code: "INVALID_ARGUMENT", reason: "PAGE_TOKEN_INVALID" });
    const garbage = await call("connect", identity, IdentityService.method.listApiKeys, { pageToken: "not-a-token" }, admin);
    assert.deepEqual(garbage, { ok: false, code: "INVALID_ARGUMENT", reason: "PAGE_TOKEN_INVALID" });
    for (const protocol of PROTOCOLS) {
      await assertForgedPageTokensRefused(first.nextPageToken, (pageToken) =>
        unaryCall(IdentityService, identity, protocol, IdentityService.method.listApiKeys, { pageSize: 2, pageToken }, { authorization: `Bearer ${admin}` }),
      );
    }
  });

  test("RevokeApiKey is idempotent and records one event", async () => {
    const admin = await tokenFor(tenantA, adminA, "admin");
    const key = ok(await createKey("grpc", admin)).apiKey!;
    const first = ok(await call("grpc", identity, IdentityService.method.revokeApiKey, { apiKeyId: key.id }, admin));
    const second = ok(await call("connect", identity, IdentityService.method.revokeApiKey, { apiKeyId: key.id }, admin));
    assert.equal(first.state, ApiKeyState.REVOKED);
    assert.deepEqual(second.revokeTime, first.revokeTime);
    const events = await withTenant(identity.deps.db, { service: "analytics", tenantId: tenantA }, (trx) =>
      trx.raw<{ rows: { event_type: string }[] }>("select event_type from event where aggregate_id = ? order by id", [key.id]),
    );
    assert.deepEqual(events.rows.map((r) => r.event_type), ["identity.api_key.created", "identity.api_key.revoked"]);
    const missing = await call("grpc", identity, IdentityService.method.revokeApiKey, { apiKeyId: randomUUID() }, admin);
    assert.deepEqual(missing, { ok: false, code: "NOT_FOUND", reason: "RESOURCE_NOT_FOUND" });
  });

  test("the tenant's max_api_keys quota counts unrevoked keys", async () => {
    const tenant = await createTenant(identity.deps.db, { quotas: { max_api_keys: 2 } });
    const admin = await tokenFor(tenant, await createUser(identity.deps.db, tenant, "admin"), "admin");
    const first = ok(await createKey("grpc", admin)).apiKey!;
    ok(await createKey("connect", admin));
    for (const protocol of PROTOCOLS) {
      assert.deepEqual(await createKey(protocol, admin), { ok: false, code: "RESOURCE_EXHAUSTED", reason: "QUOTA_EXCEEDED" });
    }
    ok(await call("grpc", identity, IdentityService.method.revokeApiKey, { apiKeyId: first.id }, admin));
    ok(await createKey("grpc", admin), "a revoked key frees its place");
  });

  test("cross-tenant: a key of tenant B sees none of tenant A's keys", async () => {
    const adminATok = await tokenFor(tenantA, adminA, "admin");
    const keyA = ok(await createKey("grpc", adminATok)).apiKey!;
    const keyB = ok(await createKey("grpc", await tokenFor(tenantB, adminB, "admin"), { role: Role.ADMIN })).secret;
    for (const protocol of PROTOCOLS) {
      const list = ok(await call(protocol, identity, IdentityService.method.listApiKeys, { pageSize: 1000, showInactive: true }, keyB));
      assert.ok(list.apiKeys.length >= 1);
      assert.ok(list.apiKeys.every((k) => k.tenantId === tenantB));
      const get = await call(protocol, identity, IdentityService.method.getApiKey, { apiKeyId: keyA.id }, keyB);
      assert.deepEqual(get, { ok: false, code: "NOT_FOUND", reason: "RESOURCE_NOT_FOUND" });
      const revoke = await call(protocol, identity, IdentityService.method.revokeApiKey, { apiKeyId: keyA.id }, keyB);
      assert.deepEqual(revoke, { ok: false, code: "NOT_FOUND", reason: "RESOURCE_NOT_FOUND" });
    }
    assert.equal(ok(await call("grpc", identity, IdentityService.method.getApiKey, { apiKeyId: keyA.id }, adminATok)).state, ApiKeyState.ACTIVE);
  });
});

describe("API keys in every service", { concurrent: true }, () => {
  test("a key is accepted by all five services over gRPC and Connect (past authentication)", async () => {
    const secret = ok(await createKey("grpc", await tokenFor(tenantA, adminA, "admin"), { role: Role.ADMIN })).secret;
    const bogus = `pck_${"A".repeat(43)}`;
    const probes = [
      { service: "identity", method: IdentityService.method.listApiKeys },
      { service: "content", method: ContentService.method.getEntity },
      { service: "graph", method: GraphService.methods.find((m) => m.methodKind === "unary")! as DescMethodUnary },
      { service: "search", method: SearchService.methods.find((m) => m.methodKind === "unary")! as DescMethodUnary },
      { service: "analytics", method: AnalyticsService.methods.find((m) => m.methodKind === "unary")! as DescMethodUnary },
    ];
    for (const protocol of PROTOCOLS) {
      for (const { service, method } of probes) {
        const outcome = await call(protocol, services.get(service)!, method, {}, secret);
        assert.ok(outcome.ok || outcome.code !== "UNAUTHENTICATED", `${protocol} ${service}: ${outcome.ok ? "OK" : `${outcome.code} ${outcome.reason}`}`);
        const refused = await call(protocol, services.get(service)!, method, {}, bogus);
        assert.deepEqual(refused, { ok: false, code: "UNAUTHENTICATED", reason: "CREDENTIALS_INVALID" }, `${protocol} ${service} bogus key`);
      }
    }
  });

  for (const protocol of PROTOCOLS) {
    test(`${protocol}: a service sees kind api_key, the tenant, the key's role and id, and no user`, async () => {
      const created = ok(await createKey(protocol, await tokenFor(tenantA, adminA, "admin"), { role: Role.VIEWER }));
      const outcome = ok(await call(protocol, echo, ContentService.method.getEntity, { entityId: randomUUID() }, created.secret));
      assert.equal(outcome.tenantId, tenantA);
      assert.equal(outcome.ownerId, "-");
      assert.equal(outcome.title, `api_key|viewer|${created.apiKey!.id}`);
    });

    test(`${protocol}: using a key records its last use`, async () => {
      const admin = await tokenFor(tenantA, adminA, "admin");
      const created = ok(await createKey(protocol, admin));
      assert.equal(created.apiKey!.lastUseTime, undefined);
      ok(await call(protocol, echo, ContentService.method.getEntity, { entityId: randomUUID() }, created.secret));
      const fetched = ok(await call(protocol, identity, IdentityService.method.getApiKey, { apiKeyId: created.apiKey!.id }, admin));
      assert.ok(fetched.lastUseTime, "last_use_time is set once a service accepted the key");
    });

    test(`${protocol}: a revoked key stops working within the cache bound`, async () => {
      const admin = await tokenFor(tenantA, adminA, "admin");
      const created = ok(await createKey(protocol, admin));
      ok(await pollEcho(protocol, created.secret, (o) => o.ok), "before revocation");
      ok(await call(protocol, identity, IdentityService.method.revokeApiKey, { apiKeyId: created.apiKey!.id }, admin));
      const started = Date.now();
      const after = await pollEcho(protocol, created.secret, refusedWith("CREDENTIALS_REVOKED"));
      assert.deepEqual(after, { ok: false, code: "UNAUTHENTICATED", reason: "CREDENTIALS_REVOKED" }, `after ${Date.now() - started} ms`);
      // Identity itself refuses it too.
      const own = await poll(() => call(protocol, identity, IdentityService.method.listApiKeys, {}, created.secret), refusedWith("CREDENTIALS_REVOKED"));
      assert.deepEqual(own, { ok: false, code: "UNAUTHENTICATED", reason: "CREDENTIALS_REVOKED" });
    });

    test(`${protocol}: an expired key is refused`, async () => {
      const created = ok(await createKey(protocol, await tokenFor(tenantA, adminA, "admin"), { expireMs: Date.now() + 3600_000 }));
      await withTenant(identity.deps.db, { service: "identity", tenantId: tenantA }, (trx) =>
        trx.raw("update api_key set created_at = now() - interval '2 hours', expires_at = now() - interval '1 hour' where id = ?", [created.apiKey!.id]),
      );
      const outcome = await pollEcho(protocol, created.secret, refusedWith("CREDENTIALS_EXPIRED"));
      assert.deepEqual(outcome, { ok: false, code: "UNAUTHENTICATED", reason: "CREDENTIALS_EXPIRED" });
      const onIdentity = await call(protocol, identity, IdentityService.method.listApiKeys, {}, created.secret);
      assert.deepEqual(onIdentity, { ok: false, code: "UNAUTHENTICATED", reason: "CREDENTIALS_EXPIRED" });
      const fetched = ok(await call(protocol, identity, IdentityService.method.getApiKey, { apiKeyId: created.apiKey!.id }, await tokenFor(tenantA, adminA, "admin")));
      assert.equal(fetched.state, ApiKeyState.EXPIRED);
    });
  }

  for (const protocol of PROTOCOLS) {
    test(`${protocol}: a key acts with at most its creator's authority now — demoted, deactivated, reactivated; a key made by a key follows it`, async () => {
      const db = identity.deps.db;
      const creator = await createUser(db, tenantA, "admin");
      const setUser = (change: string) => withTenant(db, { service: "identity", tenantId: tenantA }, (trx) => trx.raw(`update app_user set ${change} where id = ?`, [creator]));
      const actsAs = (secret: string, role: string) => pollEcho(protocol, secret, (o) => o.ok && o.value.title.startsWith(`api_key|${role}|`));
      const introspectedRole = async (secret: string) =>
        ok(await call(protocol, identity, AuthService.method.introspectCredential, { credential: secret }, await tokenFor(tenantA, adminA, "admin"))).principal?.role;

      const parent = ok(await createKey(protocol, await tokenFor(tenantA, creator, "admin"), { role: Role.ADMIN }));
      const child = ok(await createKey(protocol, parent.secret, { role: Role.ADMIN }));
      assert.equal(parent.apiKey!.creatorId, creator);
      assert.equal(child.apiKey!.creatorId, `api_key:${parent.apiKey!.id}`, "a key made by a key names it");
      ok(await actsAs(child.secret, "admin"), "before any change");

      await setUser("role = 'editor'");
      assert.equal(await introspectedRole(parent.secret), Role.EDITOR, "introspection reads it fresh");
      assert.equal(await introspectedRole(child.secret), Role.EDITOR, "down the chain too");
      ok(await actsAs(parent.secret, "editor"), "services within their cache bound");
      ok(await actsAs(child.secret, "editor"));
      const fetched = ok(await call(protocol, identity, IdentityService.method.getApiKey, { apiKeyId: parent.apiKey!.id }, await tokenFor(tenantA, adminA, "admin")));
      assert.equal(fetched.role, Role.ADMIN, "the role it was given stays on record");

      await setUser("status = 'deactivated'");
      for (const secret of [parent.secret, child.secret]) {
        assert.deepEqual(await pollEcho(protocol, secret, refusedWith("CREDENTIALS_REVOKED")), { ok: false, code: "UNAUTHENTICATED", reason: "CREDENTIALS_REVOKED" });
      }
      await setUser("status = 'active', role = 'admin'");
      ok(await actsAs(child.secret, "admin"), "works again, with the creator's role back");

      ok(await call(protocol, identity, IdentityService.method.revokeApiKey, { apiKeyId: parent.apiKey!.id }, await tokenFor(tenantA, adminA, "admin")));
      assert.deepEqual(await pollEcho(protocol, child.secret, refusedWith("CREDENTIALS_REVOKED")), { ok: false, code: "UNAUTHENTICATED", reason: "CREDENTIALS_REVOKED" });
      const inactive = ok(await call(protocol, identity, AuthService.method.introspectCredential, { credential: child.secret }, await tokenFor(tenantA, adminA, "admin")));
      assert.equal(inactive.active, false, "its creating key revoked");
    });
  }

  test("IntrospectCredential: a key describes itself; another tenant's key is inactive", async () => {
    const created = ok(await createKey("grpc", await tokenFor(tenantA, adminA, "admin"), { role: Role.EDITOR }));
    for (const protocol of PROTOCOLS) {
      const self = ok(await call(protocol, identity, AuthService.method.introspectCredential, { credential: created.secret }, created.secret));
      assert.equal(self.active, true);
      assert.equal(self.principal?.credentialType, CredentialType.API_KEY);
      assert.equal(self.principal?.tenantId, tenantA);
      assert.equal(self.principal?.apiKeyId, created.apiKey!.id);
      assert.equal(self.principal?.role, Role.EDITOR);
      assert.ok(self.cacheTtl && Number(self.cacheTtl.seconds) <= 10);
      const foreign = ok(await call(protocol, identity, AuthService.method.introspectCredential, { credential: created.secret }, await tokenFor(tenantB, adminB, "admin")));
      assert.equal(foreign.active, false);
      assert.equal(foreign.principal, undefined);
    }
  });
});

describe("access tokens of suspended tenants and deleted or deactivated users", { concurrent: true }, () => {
  for (const protocol of PROTOCOLS) {
    test(`${protocol}: a suspended tenant's tokens and keys are refused (TENANT_SUSPENDED)`, async () => {
      const db = identity.deps.db;
      const tenant = await createTenant(db);
      const user = await createUser(db, tenant, "admin");
      const token = await tokenFor(tenant, user, "admin");
      const key = ok(await createKey(protocol, token)).secret;
      ok(await pollEcho(protocol, token, (o) => o.ok), "token before suspension");
      ok(await pollEcho(protocol, key, (o) => o.ok), "key before suspension");
      await withTenant(db, { service: "identity", tenantId: tenant }, (trx) =>
        trx.raw("update tenant set status = 'suspended', suspended_at = now() where id = ?", [tenant]),
      );
      for (const bearer of [token, key]) {
        const outcome = await pollEcho(protocol, bearer, refusedWith("TENANT_SUSPENDED"));
        assert.deepEqual(outcome, { ok: false, code: "UNAUTHENTICATED", reason: "TENANT_SUSPENDED" });
      }
      for (const bearer of [token, key]) {
        const own = await poll(() => call(protocol, identity, IdentityService.method.listApiKeys, {}, bearer), refusedWith("TENANT_SUSPENDED"));
        assert.deepEqual(own, { ok: false, code: "UNAUTHENTICATED", reason: "TENANT_SUSPENDED" }, "identity too");
      }
    });

    for (const change of ["deleted", "deactivated"] as const) {
      test(`${protocol}: a ${change} user's token is refused (CREDENTIALS_REVOKED)`, async () => {
        const db = identity.deps.db;
        const user = await createUser(db, tenantA, "editor");
        const token = await tokenFor(tenantA, user, "editor");
        ok(await pollEcho(protocol, token, (o) => o.ok), "before");
        await withTenant(db, { service: "identity", tenantId: tenantA }, (trx) =>
          trx.raw(
            change === "deleted" ? "update app_user set deleted_at = now() where id = ?" : "update app_user set status = 'deactivated' where id = ?",
            [user],
          ),
        );
        const outcome = await pollEcho(protocol, token, refusedWith("CREDENTIALS_REVOKED"));
        assert.deepEqual(outcome, { ok: false, code: "UNAUTHENTICATED", reason: "CREDENTIALS_REVOKED" });
        const other = await tokenFor(tenantA, editorA, "editor");
        ok(await call(protocol, echo, ContentService.method.getEntity, { entityId: randomUUID() }, other), "other users are unaffected");
      });
    }
  }

  test("a token for a user that never existed is refused", async () => {
    const outcome = await call("grpc", echo, ContentService.method.getEntity, { entityId: randomUUID() }, await tokenFor(tenantA, randomUUID(), "owner"));
    assert.deepEqual(outcome, { ok: false, code: "UNAUTHENTICATED", reason: "CREDENTIALS_REVOKED" });
  });
});
