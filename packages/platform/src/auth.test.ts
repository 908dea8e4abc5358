import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { generateKeyPairSync, randomUUID, type KeyObject } from "node:crypto";
import { SignJWT, type JWK } from "jose";
import { AuthService } from "@promptcraft/proto/promptcraft/identity/v1/auth_service_pb";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { grpc, grpcUnary } from "@promptcraft/testing";
import { Code } from "@connectrpc/connect";
import { accessTokenAuthenticator, bearerToken, TokenVerifier, type JwksFetcher } from "./auth.js";
import { reasonName, UnauthenticatedError, UnavailableError, unavailableDependency } from "./errors.js";
import { serve } from "./handlers.js";
import { createLogger } from "./logger.js";
import { startServer, type RunningServer } from "./server.js";

const ISSUER = "test-issuer";
const TENANT = randomUUID();
const USER = randomUUID();

function keyPair(kid: string): { kid: string; privateKey: KeyObject; jwk: JWK } {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return { kid, privateKey, jwk: { ...(publicKey.export({ format: "jwk" }) as JWK), kid, alg: "EdDSA", use: "sig" } };
}

async function token(key: { kid: string; privateKey: KeyObject }, claims: Record<string, unknown> = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const payload = { iss: ISSUER, aud: "promptcraft", sub: USER, tid: TENANT, role: "viewer", sid: "s1", jti: randomUUID(), iat: now, nbf: now, exp: now + 300, ...claims };
  return new SignJWT(payload).setProtectedHeader({ alg: "EdDSA", kid: key.kid, typ: "at+jwt" }).sign(key.privateKey);
}

/** A JWK Set that the test changes, and a count of fetches. */
function source(initial: JWK[]): { fetch: JwksFetcher; set(keys: JWK[]): void; count(): number; fail(on: boolean): void } {
  let keys = initial;
  let fetches = 0;
  let failing = false;
  return {
    fetch: async () => {
      fetches++;
      if (failing) throw new Error("identity unreachable");
      return keys;
    },
    set: (next) => (keys = next),
    count: () => fetches,
    fail: (on) => (failing = on),
  };
}

const isReason = (reason: string) => (err: unknown) => err instanceof UnauthenticatedError && reasonName(err.reason) === reason;

describe("TokenVerifier", () => {
  test("verifies and returns tenant, user, role, session", async () => {
    const k1 = keyPair("k1");
    const verifier = new TokenVerifier({ fetchJwks: source([k1.jwk]).fetch, issuer: ISSUER });
    assert.deepEqual(await verifier.verify(await token(k1)), { tenantId: TENANT, userId: USER, role: "viewer", credentialId: "s1", kind: "access_token" });
  });

  test("an unknown kid triggers one refresh, then at most one per interval", async () => {
    let clock = 1_000_000;
    const k1 = keyPair("k1");
    const k2 = keyPair("k2");
    const jwks = source([k1.jwk]);
    const verifier = new TokenVerifier({ fetchJwks: jwks.fetch, issuer: ISSUER, minRefreshIntervalMs: 30_000, now: () => clock });
    await verifier.verify(await token(k1, { iat: clock / 1000, nbf: clock / 1000, exp: clock / 1000 + 300 }));
    assert.equal(jwks.count(), 1);
    const claims = { iat: clock / 1000, nbf: clock / 1000, exp: clock / 1000 + 300 };
    // Unknown kids, many at once: one refresh.
    const stranger = keyPair("stranger");
    await Promise.all([1, 2, 3].map(async () => assert.rejects(verifier.verify(await token(stranger, claims)), isReason("CREDENTIALS_INVALID"))));
    assert.equal(jwks.count(), 2);
    // k2 appears, but the last kid refresh was just now: refused without a fetch.
    jwks.set([k2.jwk, k1.jwk]);
    await assert.rejects(verifier.verify(await token(k2, claims)), isReason("CREDENTIALS_INVALID"));
    assert.equal(jwks.count(), 2);
    // Later: the stale cache picks the new kid up with one refresh.
    clock += 30_000;
    const later = { iat: clock / 1000, nbf: clock / 1000, exp: clock / 1000 + 300 };
    assert.equal((await verifier.verify(await token(k2, later))).userId, USER);
    assert.equal(jwks.count(), 3);
    assert.deepEqual(verifier.cachedKids().sort(), ["k1", "k2"]);
  });

  test("a key that leaves the set stops verifying at the next refresh (cache expiry refreshes in the background)", async () => {
    let clock = 2_000_000;
    const k1 = keyPair("k1");
    const k2 = keyPair("k2");
    const jwks = source([k2.jwk, k1.jwk]);
    const verifier = new TokenVerifier({ fetchJwks: jwks.fetch, issuer: ISSUER, cacheTtlMs: 60_000, now: () => clock });
    const claims = () => ({ iat: clock / 1000, nbf: clock / 1000, exp: clock / 1000 + 300 });
    await verifier.verify(await token(k1, claims()));
    jwks.set([k2.jwk]);
    clock += 61_000;
    await verifier.verify(await token(k1, claims())); // served from the stale cache, refresh started
    await verifier.refresh(); // joins the background refresh
    assert.deepEqual(verifier.cachedKids(), ["k2"]);
    await assert.rejects(verifier.verify(await token(k1, claims())), isReason("CREDENTIALS_INVALID"));
  });

  test("a verified token is remembered, but not past its expiry nor past its key's retirement", async () => {
    let clock = 3_000_000;
    const k1 = keyPair("k1");
    const k2 = keyPair("k2");
    const jwks = source([k1.jwk, k2.jwk]);
    const verifier = new TokenVerifier({ fetchJwks: jwks.fetch, issuer: ISSUER, now: () => clock });
    const claims = { iat: clock / 1000, nbf: clock / 1000, exp: clock / 1000 + 300 };
    const t1 = await token(k1, claims);
    const t2 = await token(k2, claims);
    const first = await verifier.verify(t1);
    assert.equal(await verifier.verify(t1), first, "the second call is the remembered verdict");
    assert.ok(Object.isFrozen(first), "a shared verdict cannot be changed by a handler");
    // k1 is retired: its remembered tokens stop working as soon as the key set no longer has it.
    jwks.set([k2.jwk]);
    await verifier.refresh();
    await assert.rejects(verifier.verify(t1), isReason("CREDENTIALS_INVALID"));
    // A remembered token still expires (exp + clock tolerance).
    assert.equal((await verifier.verify(t2)).userId, USER);
    clock += (300 + 31) * 1000;
    await assert.rejects(verifier.verify(t2), isReason("CREDENTIALS_EXPIRED"));
  });

  test("keys that are not Ed25519 signing keys are ignored, whatever their kid", async () => {
    const k1 = keyPair("k1");
    const { privateKey: rsa } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const rsaJwk = { ...(rsa.export({ format: "jwk" }) as JWK), kid: "k1" };
    const verifier = new TokenVerifier({
      fetchJwks: source([
        { kty: "oct", k: "c2VjcmV0", kid: "k1" },
        { ...rsaJwk, d: undefined, p: undefined, q: undefined, dp: undefined, dq: undefined, qi: undefined },
        { ...k1.jwk, kid: "enc", use: "enc" },
        { ...k1.jwk, kid: "es", alg: "ES256" },
      ]).fetch,
      issuer: ISSUER,
    });
    await assert.rejects(verifier.verify(await token(k1)), isReason("CREDENTIALS_INVALID"));
    assert.deepEqual(verifier.cachedKids(), []);
  });

  test("a JWKS that cannot be fetched at first use is UNAVAILABLE, not the caller's fault, and is not refetched per call", async () => {
    let clock = Date.now();
    const k1 = keyPair("k1");
    const jwks = source([k1.jwk]);
    jwks.fail(true);
    const verifier = new TokenVerifier({ fetchJwks: jwks.fetch, issuer: ISSUER, now: () => clock });
    const unavailable = (err: unknown) =>
      err instanceof UnavailableError && err.code === Code.Unavailable && unavailableDependency(err) === "identity" && err.retryAfterMs !== undefined;
    await assert.rejects(verifier.verify(await token(k1)), unavailable);
    assert.equal(jwks.count(), 1);
    jwks.fail(false);
    await assert.rejects(verifier.verify(await token(k1)), unavailable); // within the back-off: no fetch
    assert.equal(jwks.count(), 1);
    clock += 1000;
    assert.equal((await verifier.verify(await token(k1))).tenantId, TENANT);
    assert.equal(jwks.count(), 2);
  });

  test("oversized tokens are refused unparsed", async () => {
    const verifier = new TokenVerifier({ fetchJwks: source([]).fetch, issuer: ISSUER });
    await assert.rejects(verifier.verify(`${"a".repeat(5000)}.b.c`), isReason("CREDENTIALS_INVALID"));
  });

  test("embedded keys (jwk, jku) in the header are refused", async () => {
    const k1 = keyPair("k1");
    const verifier = new TokenVerifier({ fetchJwks: source([k1.jwk]).fetch, issuer: ISSUER });
    const now = Math.floor(Date.now() / 1000);
    const withJwk = await new SignJWT({ tid: TENANT, role: "viewer", sid: "s1", jti: "j" })
      .setProtectedHeader({ alg: "EdDSA", kid: "k1", typ: "at+jwt", jwk: { kty: "OKP", crv: "Ed25519", x: k1.jwk.x! } })
      .setIssuer(ISSUER)
      .setAudience("promptcraft")
      .setSubject(USER)
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + 60)
      .sign(k1.privateKey);
    await assert.rejects(verifier.verify(withJwk), isReason("CREDENTIALS_INVALID"));
  });
});

describe("bearerToken", () => {
  const ctx = (value: string | undefined) => ({ header: () => value });
  test("reads `Bearer <token>`, case-insensitive scheme; absent is undefined; anything else is invalid", () => {
    assert.equal(bearerToken(ctx("Bearer abc.def.ghi")), "abc.def.ghi");
    assert.equal(bearerToken(ctx("bearer abc")), "abc");
    assert.equal(bearerToken(ctx(undefined)), undefined);
    assert.equal(bearerToken(ctx("")), undefined);
    for (const bad of ["Basic abc", "Bearer", "Bearer a b", "Bearer a\u0000b", "abc"]) {
      assert.throws(() => bearerToken(ctx(bad)), UnauthenticatedError, bad);
    }
  });
});

describe("per-method public marking in the pipeline", () => {
  let server: RunningServer;
  const k1 = keyPair("k1");
  beforeAll(async () => {
    server = await startServer({
      name: "test",
      host: "127.0.0.1",
      grpcPort: 0,
      connectPort: 0,
      log: createLogger("test", "silent"),
      authenticate: accessTokenAuthenticator(new TokenVerifier({ fetchJwks: source([k1.jwk]).fetch, issuer: ISSUER })),
      services: [
        serve(AuthService, { getJwks: async (_request, ctx) => ({ keys: ctx.auth ? [] : [{ kid: "anonymous" }] }) }, { publicMethods: ["getJwks", "login"] }),
        serve(ContentService, { getEntity: async (request, ctx) => ({ id: request.entityId, tenantId: ctx.auth?.tenantId }) }),
      ],
    });
  });
  afterAll(async () => {
    await server.close();
  });
  const address = () => `127.0.0.1:${server.grpcPort}`;

  test("a public method answers without credentials (and its handler sees no caller)", async () => {
    const result = await grpcUnary(address(), AuthService.method.getJwks, {});
    assert.ok("response" in result);
    assert.equal(result.response.keys[0]?.kid, "anonymous");
  });

  test("a public method not built yet is UNIMPLEMENTED; a non-public one is UNAUTHENTICATED first", async () => {
    const login = await grpcUnary(address(), AuthService.method.login, {});
    assert.ok("failure" in login);
    assert.equal(login.failure.code, grpc.status.UNIMPLEMENTED);
    const logout = await grpcUnary(address(), AuthService.method.logout, {});
    assert.ok("failure" in logout);
    assert.equal(logout.failure.code, grpc.status.UNAUTHENTICATED);
    const withToken = await grpcUnary(address(), AuthService.method.logout, {}, { metadata: { authorization: `Bearer ${await token(k1)}` } });
    assert.ok("failure" in withToken);
    assert.equal(withToken.failure.code, grpc.status.UNIMPLEMENTED);
  });

  test("authentication comes before decoding and validation: anonymous garbage is UNAUTHENTICATED", async () => {
    const invalid = await grpcUnary(address(), ContentService.method.getEntity, { entityId: "not-a-uuid" });
    assert.ok("failure" in invalid);
    assert.equal(invalid.failure.code, grpc.status.UNAUTHENTICATED);
    const authed = await grpcUnary(address(), ContentService.method.getEntity, { entityId: "not-a-uuid" }, { metadata: { authorization: `Bearer ${await token(k1)}` } });
    assert.ok("failure" in authed);
    assert.equal(authed.failure.code, grpc.status.INVALID_ARGUMENT);
  });

  test("serve() refuses a public method name the service does not have", () => {
    assert.throws(() => serve(AuthService, {}, { publicMethods: ["nope" as never] }), /no method nope/);
  });
});
