import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { createHmac, generateKeyPairSync, randomUUID, type KeyObject } from "node:crypto";
import { SignJWT, calculateJwkThumbprint, decodeProtectedHeader } from "jose";
import {
  accessTokenAuthenticator,
  createLogger,
  remoteJwks,
  serve,
  startServer,
  TokenVerifier,
  type RunningServer,
  type RunningService,
} from "@promptcraft/platform";
import {
  generateSigningKey,
  issueAccessToken,
  keyEncryptionKey,
  PUBLISH_AFTER_RETIREMENT_S,
  type KeyRing,
  KeyRing as KeyRingClass,
} from "@promptcraft/identity";
import { createKnex, withServiceRole } from "@promptcraft/db";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { AuthService } from "@promptcraft/proto/promptcraft/identity/v1/auth_service_pb";
import { IdentityService } from "@promptcraft/proto/promptcraft/identity/v1/identity_service_pb";
import { ErrorInfoSchema } from "@promptcraft/proto/google/rpc/error_details_pb";
import { createServiceClient, ConnectError, Code } from "@promptcraft/client";
import { createTenant, createUser, grpc, grpcUnary } from "@promptcraft/testing";
import { ADMIN_TOKEN, IdentityHarness, testServiceEnv } from "./identity-e2e-helpers.js";

/**
 * Access tokens end to end: identity issues and publishes, a service verifies locally against the
 * JWK Set fetched from identity over gRPC — and refuses every trick, on both transports.
 */

const ISSUER = "promptcraft-identity";
const ENTITY_ID = "6f1c1b1e-8d1a-4a57-9a0f-3f5b8c1d2e4f";
const log = createLogger("test", "silent");

let identity: RunningService;
let keys: KeyRing;
let identityUrl: string;
/** A server with a test-only handler that echoes `ctx.auth`, verifying against identity's JWKS. */
let echo: RunningServer;
let tenantId: string;
let userId: string;

const harness = new IdentityHarness();

beforeAll(async () => {
  await harness.start({ DB_POOL_MAX: "3" });
  identity = harness.identity;
  keys = harness.keys;
  identityUrl = harness.url;
  tenantId = await createTenant(identity.deps.db);
  userId = await createUser(identity.deps.db, tenantId, "editor");
  const verifier = new TokenVerifier({ fetchJwks: remoteJwks(identityUrl), issuer: ISSUER, log });
  echo = await startServer({
    name: "echo",
    host: "127.0.0.1",
    grpcPort: 0,
    connectPort: 0,
    log,
    authenticate: accessTokenAuthenticator(verifier),
    services: [
      // Test double on a real contract: what matters is the platform in front of it.
      serve(ContentService, {
        getEntity: async (request, ctx) => ({
          id: request.entityId,
          tenantId: ctx.auth?.tenantId ?? "",
          ownerId: ctx.auth?.userId ?? "",
          title: `${ctx.auth?.role}|${ctx.auth?.kind}|${ctx.auth?.credentialId}`,
        }),
      }),
    ],
  });
});
afterAll(async () => {
  await echo?.close();
  await harness.close();
});

/** The `sid` of the test tokens: a UUID, like identity's (every service refuses any other). */
const SESSION_ID = randomUUID();
const now = () => Math.floor(Date.now() / 1000);
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

function validClaims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const t = now();
  return { iss: ISSUER, aud: "promptcraft", sub: userId, tid: tenantId, role: "editor", sid: SESSION_ID, jti: randomUUID(), iat: t, nbf: t, exp: t + 600, ...overrides };
}

/** Signs `claims` with `key` (jose), header `alg: EdDSA`, `typ: at+jwt` unless overridden. */
async function sign(claims: Record<string, unknown>, key: KeyObject, header: Record<string, unknown>): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: "EdDSA", typ: "at+jwt", ...header }).sign(key);
}

async function issue(): Promise<string> {
  return (await issueAccessToken(keys, { issuer: ISSUER, ttlS: 900 }, { tenantId, userId, role: "editor", sessionId: SESSION_ID })).token;
}

interface Outcome {
  ok: boolean;
  code?: string;
  reason?: string;
  tenantId?: string;
  userId?: string;
  title?: string;
}

/** One GetEntity call on the echo server with `authorization` set to `auth` (if given). */
async function call(protocol: "grpc" | "connect", auth: string | undefined): Promise<Outcome> {
  const metadata: Record<string, string> = auth === undefined ? {} : { authorization: auth };
  if (protocol === "grpc") {
    const result = await grpcUnary(`127.0.0.1:${echo.grpcPort}`, ContentService.method.getEntity, { entityId: ENTITY_ID }, { metadata });
    if ("response" in result) return { ok: true, tenantId: result.response.tenantId, userId: result.response.ownerId, title: result.response.title };
    return { ok: false, code: grpc.status[result.failure.code], reason: result.failure.errorInfo?.reason };
  }
  const client = createServiceClient(ContentService, `http://127.0.0.1:${echo.connectPort}`, { protocol: "connect" });
  try {
    const entity = await client.getEntity({ entityId: ENTITY_ID }, { headers: metadata });
    return { ok: true, tenantId: entity.tenantId, userId: entity.ownerId, title: entity.title };
  } catch (e) {
    const err = ConnectError.from(e);
    // Connect codes are the gRPC codes, by number.
    return { ok: false, code: grpc.status[err.code as number], reason: err.findDetails(ErrorInfoSchema)[0]?.reason };
  }
}

describe("access tokens over gRPC and Connect", () => {
  // Each case: the `authorization` header value, and the ErrorInfo reason expected.
  const attacks: { name: string; auth: () => Promise<string | undefined>; reason: string }[] = [
    { name: "no credentials", auth: async () => undefined, reason: "CREDENTIALS_MISSING" },
    { name: "garbage", auth: async () => "Bearer not-a-token", reason: "CREDENTIALS_INVALID" },
    { name: "three garbage segments", auth: async () => "Bearer a.b.c", reason: "CREDENTIALS_INVALID" },
    { name: "another scheme", auth: async () => `Basic ${Buffer.from("a:b").toString("base64")}`, reason: "CREDENTIALS_INVALID" },
    {
      name: "forged signature (another Ed25519 key, same kid)",
      auth: async () => {
        const { kid } = await keys.signingKey();
        return `Bearer ${await sign(validClaims(), generateKeyPairSync("ed25519").privateKey, { kid })}`;
      },
      reason: "CREDENTIALS_INVALID",
    },
    {
      name: "alg: none",
      auth: async () => {
        const { kid } = await keys.signingKey();
        return `Bearer ${b64({ alg: "none", kid, typ: "at+jwt" })}.${b64(validClaims())}.`;
      },
      reason: "CREDENTIALS_INVALID",
    },
    ...(["raw public key bytes", "public JWK text"] as const).map((variant) => ({
      name: `HS256 with the ${variant} as the HMAC secret (key confusion)`,
      auth: async () => {
        const { kid } = await keys.signingKey();
        const jwk = (await keys.publishedJwks()).find((k) => k.kid === kid)!;
        const input = `${b64({ alg: "HS256", kid, typ: "at+jwt" })}.${b64(validClaims())}`;
        const secret = variant === "raw public key bytes" ? Buffer.from(jwk.x, "base64url") : Buffer.from(JSON.stringify(jwk));
        return `Bearer ${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`;
      },
      reason: "CREDENTIALS_INVALID",
    })),
    {
      name: "RS256 header",
      auth: async () => {
        const { kid } = await keys.signingKey();
        return `Bearer ${b64({ alg: "RS256", kid, typ: "at+jwt" })}.${b64(validClaims())}.${Buffer.alloc(256).toString("base64url")}`;
      },
      reason: "CREDENTIALS_INVALID",
    },
    {
      name: "a key from another issuer (its own key and JWKS)",
      auth: async () => {
        const { privateKey, publicKey } = generateKeyPairSync("ed25519");
        const kid = await calculateJwkThumbprint(publicKey.export({ format: "jwk" }));
        return `Bearer ${await sign(validClaims({ iss: "https://evil.example" }), privateKey, { kid })}`;
      },
      reason: "CREDENTIALS_INVALID",
    },
    {
      name: "a foreign key claiming our issuer",
      auth: async () => {
        const { privateKey } = generateKeyPairSync("ed25519");
        return `Bearer ${await sign(validClaims(), privateKey, { kid: `foreign-${randomUUID()}` })}`;
      },
      reason: "CREDENTIALS_INVALID",
    },
    { name: "wrong audience", auth: async () => `Bearer ${await realSigned(validClaims({ aud: "someone-else" }))}`, reason: "CREDENTIALS_INVALID" },
    { name: "wrong issuer", auth: async () => `Bearer ${await realSigned(validClaims({ iss: "https://evil.example" }))}`, reason: "CREDENTIALS_INVALID" },
    {
      name: "expired",
      auth: async () => `Bearer ${await realSigned(validClaims({ iat: now() - 900, nbf: now() - 900, exp: now() - 120 }))}`,
      reason: "CREDENTIALS_EXPIRED",
    },
    { name: "not yet valid", auth: async () => `Bearer ${await realSigned(validClaims({ nbf: now() + 300 }))}`, reason: "CREDENTIALS_INVALID" },
    {
      name: "tampered claims (payload edited, signature kept)",
      auth: async () => {
        const [header, , signature] = (await issue()).split(".");
        return `Bearer ${header}.${b64(validClaims({ role: "owner" }))}.${signature}`;
      },
      reason: "CREDENTIALS_INVALID",
    },
    {
      name: "unknown kid (signed by the real key)",
      auth: async () => `Bearer ${await realSigned(validClaims(), { kid: `unknown-${randomUUID()}` })}`,
      reason: "CREDENTIALS_INVALID",
    },
    { name: "lifetime over 15 minutes", auth: async () => `Bearer ${await realSigned(validClaims({ exp: now() + 3600 }))}`, reason: "CREDENTIALS_INVALID" },
    { name: "a required claim missing (tid)", auth: async () => `Bearer ${await realSigned(validClaims({ tid: undefined }))}`, reason: "CREDENTIALS_INVALID" },
    { name: "a role that does not exist", auth: async () => `Bearer ${await realSigned(validClaims({ role: "root" }))}`, reason: "CREDENTIALS_INVALID" },
    { name: "not an access token (typ JWT)", auth: async () => `Bearer ${await realSigned(validClaims(), { typ: "JWT" })}`, reason: "CREDENTIALS_INVALID" },
  ];

  for (const protocol of ["grpc", "connect"] as const) {
    test(`${protocol}: a valid token is accepted and the handler sees tenant, user and role`, async () => {
      const outcome = await call(protocol, `Bearer ${await issue()}`);
      assert.deepEqual(outcome, { ok: true, tenantId, userId, title: `editor|access_token|${SESSION_ID}` });
    });

    for (const attack of attacks) {
      test(`${protocol}: refused — ${attack.name}`, async () => {
        const outcome = await call(protocol, await attack.auth());
        assert.deepEqual(outcome, { ok: false, code: "UNAUTHENTICATED", reason: attack.reason });
      });
    }
  }

  test("refusals say nothing an attacker could use", async () => {
    const result = await grpcUnary(`127.0.0.1:${echo.grpcPort}`, ContentService.method.getEntity, { entityId: ENTITY_ID }, {
      metadata: { authorization: `Bearer ${await realSigned(validClaims({ aud: "someone-else" }))}` },
    });
    assert.ok("failure" in result);
    assert.equal(result.failure.message, "invalid credentials");
    assert.deepEqual(result.failure.errorInfo?.metadata, {});
  });
});

/** Signs with identity's real active key: only the claims or header are wrong. */
async function realSigned(claims: Record<string, unknown>, header: Record<string, unknown> = {}): Promise<string> {
  const key = await keys.signingKey();
  return sign(claims, key.privateKey, { kid: key.kid, ...header });
}

describe("JWKS", () => {
  test("GetJwks (gRPC and Connect) and GET /.well-known/jwks.json list the same Ed25519 keys, signing key first", async () => {
    const { kid } = await keys.signingKey();
    const viaGrpc = await grpcUnary(identityUrl.replace("http://", ""), AuthService.method.getJwks, {});
    assert.ok("response" in viaGrpc);
    assert.equal(viaGrpc.headers.get("cache-control")[0], "public, max-age=300");
    const viaConnect = await createServiceClient(AuthService, `http://127.0.0.1:${identity.connectPort}`, { protocol: "connect" }).getJwks({});
    const res = await fetch(`http://127.0.0.1:${identity.connectPort}/.well-known/jwks.json`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
    assert.equal(res.headers.get("cache-control"), "public, max-age=300");
    const http = (await res.json()) as { keys: Record<string, string>[] };
    const fromRpc = viaGrpc.response.keys.map((k) => ({ kty: k.kty, kid: k.kid, use: k.use, alg: k.alg, crv: k.crv, x: k.x }));
    const fromConnect = viaConnect.keys.map((k) => ({ kty: k.kty, kid: k.kid, use: k.use, alg: k.alg, crv: k.crv, x: k.x }));
    // The caches may straddle a rotation by another test: compare the kids they agree on.
    assert.ok(http.keys.length >= 1);
    for (const key of http.keys) {
      assert.deepEqual(Object.keys(key).sort(), ["alg", "crv", "kid", "kty", "use", "x"]);
      assert.equal(key.kty, "OKP");
      assert.equal(key.crv, "Ed25519");
      assert.equal(key.alg, "EdDSA");
      assert.equal(key.use, "sig");
      assert.equal(Buffer.from(key.x!, "base64url").length, 32);
    }
    assert.deepEqual(fromRpc, fromConnect);
    assert.deepEqual(fromRpc, http.keys);
    assert.equal(http.keys[0]!.kid, kid);
  });

  test("the JWKS route answers GET and HEAD only", async () => {
    const url = `http://127.0.0.1:${identity.connectPort}/.well-known/jwks.json`;
    assert.equal((await fetch(url, { method: "POST" })).status, 405);
    const head = await fetch(url, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), "");
  });

  test("private keys are stored encrypted, never as PEM", async () => {
    const rows = await withServiceRole(identity.deps.db, "identity", (trx) =>
      trx.raw<{ rows: { private_key: string }[] }>("select private_key from signing_key where private_key like 'aes256gcm:%' limit 5"),
    );
    assert.ok(rows.rows.length >= 1);
    for (const row of rows.rows) assert.doesNotMatch(row.private_key, /PRIVATE KEY/);
  });
});

describe("signing-key rotation", () => {
  const rotate = (authorization?: string) =>
    grpcUnary(identityUrl.replace("http://", ""), AuthService.method.rotateSigningKey, {}, {
      metadata: authorization ? { authorization } : {},
    });

  test("RotateSigningKey needs the platform-admin credential", async () => {
    const anonymous = await rotate();
    assert.ok("failure" in anonymous);
    assert.equal(anonymous.failure.code, grpc.status.UNAUTHENTICATED);
    const wrong = await rotate(`Bearer ${ADMIN_TOKEN.replace(/.$/, "X")}`);
    assert.ok("failure" in wrong);
    assert.equal(wrong.failure.code, grpc.status.PERMISSION_DENIED);
    assert.equal(wrong.failure.errorInfo?.reason, "PLATFORM_ADMIN_REQUIRED");
    const user = await rotate(`Bearer ${await issue()}`);
    assert.ok("failure" in user);
    assert.equal(user.failure.code, grpc.status.PERMISSION_DENIED);
    const overConnect = await createServiceClient(AuthService, `http://127.0.0.1:${identity.connectPort}`, { protocol: "connect", token: "x".repeat(40) })
      .rotateSigningKey({})
      .then(
        () => assert.fail("expected PERMISSION_DENIED"),
        (e: unknown) => ConnectError.from(e),
      );
    assert.equal(overConnect.code, Code.PermissionDenied);
  });

  test("after a rotation the new key signs, old tokens still verify, and a stale verifier refreshes once", async () => {
    let fetches = 0;
    const fetchJwks = remoteJwks(identityUrl);
    const verifier = new TokenVerifier({
      fetchJwks: async () => {
        fetches++;
        return fetchJwks();
      },
      issuer: ISSUER,
    });
    try {
      const before = await issue();
      const oldKid = (await keys.signingKey()).kid;
      assert.equal((await verifier.verify(before)).userId, userId);
      assert.equal(fetches, 1);

      const rotated = await rotate(`Bearer ${ADMIN_TOKEN}`);
      assert.ok("response" in rotated, "admin may rotate");
      const newKid = rotated.response.key!.kid;
      assert.notEqual(newKid, oldKid);
      assert.equal(rotated.response.key!.alg, "EdDSA");
      assert.ok(rotated.response.activateTime);

      const after = await issue();
      assert.equal(decodeProtectedHeader(after).kid, newKid, "the new key signs");
      // The verifier's cache predates the rotation: the unknown kid makes it refresh, once.
      assert.equal((await verifier.verify(after)).userId, userId);
      assert.equal(fetches, 2);
      assert.ok(verifier.cachedKids().includes(oldKid) && verifier.cachedKids().includes(newKid));
      // Tokens of the old key keep working until they expire.
      assert.equal((await verifier.verify(before)).userId, userId);
      assert.equal((await call("grpc", `Bearer ${before}`)).ok, true, "the echo server still accepts the old key's token");
      // Identity's own verifier (it reads its key store) accepts the new key's token on a
      // non-public method.
      const own = await grpcUnary(identityUrl.replace("http://", ""), IdentityService.method.getTenant, { tenantId }, {
        metadata: { authorization: `Bearer ${after}` },
      });
      assert.ok("response" in own, "GetTenant with the new key's token");
      assert.equal(own.response.id, tenantId);

      // The old key stays published exactly as long as its tokens can live.
      const old = await withServiceRole(identity.deps.db, "identity", (trx) =>
        trx.raw<{ rows: { retired_at: Date; expires_at: Date }[] }>("select retired_at, expires_at from signing_key where kid = ?", [oldKid]),
      );
      const row = old.rows[0]!;
      assert.equal((row.expires_at.getTime() - row.retired_at.getTime()) / 1000, PUBLISH_AFTER_RETIREMENT_S);
      const jwks = await createServiceClient(AuthService, identityUrl).getJwks({});
      assert.equal(jwks.keys[0]!.kid, newKid, "the signing key comes first");
      assert.ok(jwks.keys.some((k) => k.kid === oldKid), "the old key is still published");
    } finally {
      fetchJwks.close?.();
    }
  });

  test("a key dropped from the JWK Set (retired, its publication over) no longer verifies", async () => {
    const kek = keyEncryptionKey(undefined, undefined, log);
    // A dedicated retired key, so that the shared active key is left alone.
    const generated = await generateSigningKey(kek);
    await withServiceRole(identity.deps.db, "identity", (trx) =>
      trx.raw(
        `insert into signing_key (kid, algorithm, public_jwk, private_key, activated_at, retired_at, expires_at)
         values (?, 'EdDSA', ?::jsonb, ?, now() - interval '20 minutes', now() - interval '17 minutes', now() + interval '1 hour')`,
        [generated.key.kid, JSON.stringify(generated.key.publicJwk), generated.key.encryptedPrivateKey],
      ),
    );
    const token = await sign(validClaims(), generated.privateKey, { kid: generated.key.kid });
    // Straight from the key store (a fresh key ring has no cache): what GetJwks serves.
    const fetchJwks = () => new KeyRingClass(identity.deps.db, kek).publishedJwks();
    {
      const verifier = new TokenVerifier({ fetchJwks, issuer: ISSUER });
      assert.equal((await verifier.verify(token)).tenantId, tenantId, "published: verifies");

      await withServiceRole(identity.deps.db, "identity", (trx) =>
        trx.raw("update signing_key set expires_at = now() - interval '1 second' where kid = ?", [generated.key.kid]),
      );
      await verifier.refresh(); // what the cache's expiry does in the background
      await assert.rejects(verifier.verify(token), (err: Error) => err.message === "invalid credentials");
      const fresh = new TokenVerifier({ fetchJwks, issuer: ISSUER });
      await assert.rejects(fresh.verify(token), (err: Error) => err.message === "invalid credentials");
      assert.ok(!(await fetchJwks()).some((k) => k.kid === generated.key.kid), "no longer published");
    }
  });

  test("two replicas starting at once make one active key", async () => {
    const kek = keyEncryptionKey(undefined, undefined, log);
    const url = testServiceEnv().DATABASE_URL!;
    const dbs = [createKnex({ url, poolMax: 1 }), createKnex({ url, poolMax: 1 })];
    try {
      // No active key, as on a fresh database (the retired one stays published).
      await withServiceRole(identity.deps.db, "identity", (trx) =>
        trx.raw(
          `update signing_key set retired_at = now(), expires_at = now() + make_interval(secs => ?)
           where activated_at is not null and retired_at is null`,
          [PUBLISH_AFTER_RETIREMENT_S],
        ),
      );
      const [a, b] = await Promise.all(dbs.map((db) => new KeyRingClass(db, kek).ensureActive()));
      assert.equal(a!.kid, b!.kid);
      const active = await withServiceRole(identity.deps.db, "identity", (trx) =>
        trx.raw<{ rows: { kid: string }[] }>("select kid from signing_key where activated_at is not null and retired_at is null"),
      );
      assert.deepEqual(active.rows.map((r) => r.kid), [a!.kid]);
    } finally {
      await Promise.all(dbs.map((db) => db.destroy()));
    }
  });
});
