import { test, describe } from "vitest";
import assert from "node:assert/strict";
import { generateKeyPairSync, randomUUID } from "node:crypto";
import net from "node:net";
import { createKnex } from "@promptcraft/db";
import { SignJWT, type JWK } from "jose";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import { TokenVerifier } from "./auth.js";
import type { CallContext } from "./context.js";
import {
  cachedApiKeyResolver,
  cachedStatusChecker,
  CREDENTIAL_CACHE_TTL_MS,
  credentialAuthenticator,
  databaseStatusChecker,
  ExpiringCache,
  remoteApiKeyResolver,
  type ApiKeyResolution,
  type StatusCheck,
} from "./credentials.js";
import { reasonName, UnauthenticatedError, UnavailableError, unavailableDependency } from "./errors.js";

const TENANT = randomUUID();
const KEY_ID = randomUUID();
const SECRET = `pck_${"x".repeat(43)}`;

function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe("ExpiringCache", () => {
  test("reuses an answer until its TTL, then loads again", async () => {
    const c = clock();
    const cache = new ExpiringCache<number>({ ttlMs: 5000, maxEntries: 10, now: c.now });
    let loads = 0;
    const load = async () => ++loads;
    assert.equal(await cache.get("k", load), 1);
    c.advance(4999);
    assert.equal(await cache.get("k", load), 1);
    c.advance(2);
    assert.equal(await cache.get("k", load), 2);
  });

  test("coalesces concurrent loads of one key and does not cache failures", async () => {
    const cache = new ExpiringCache<string>({ ttlMs: 5000, maxEntries: 10 });
    let loads = 0;
    const slow = () => new Promise<string>((resolve) => setTimeout(() => resolve(String(++loads)), 10));
    const answers = await Promise.all([cache.get("k", slow), cache.get("k", slow), cache.get("k", slow)]);
    assert.deepEqual(answers, ["1", "1", "1"]);
    await assert.rejects(cache.get("e", () => Promise.reject(new Error("down"))));
    assert.equal(await cache.get("e", async () => "up"), "up");
  });

  test("is bounded: the oldest entry goes first", async () => {
    const cache = new ExpiringCache<string>({ ttlMs: 5000, maxEntries: 3 });
    for (const k of ["a", "b", "c", "d"]) await cache.get(k, async () => k);
    assert.equal(cache.size, 3);
    let reloaded = false;
    await cache.get("a", async () => ((reloaded = true), "a"));
    assert.equal(reloaded, true);
  });
});

describe("cached API key resolution", () => {
  const active: ApiKeyResolution = { active: true, auth: { tenantId: TENANT, role: "editor", credentialId: KEY_ID, kind: "api_key" } };

  test("positive and negative answers are cached for at most the bound", async () => {
    const c = clock();
    let answer: ApiKeyResolution = active;
    let calls = 0;
    const resolve = cachedApiKeyResolver(async () => (calls++, answer), { ttlMs: 60_000, now: c.now });
    assert.deepEqual(await resolve(SECRET), active);
    answer = { active: false, reason: ErrorReason.CREDENTIALS_REVOKED };
    c.advance(CREDENTIAL_CACHE_TTL_MS - 1);
    assert.deepEqual(await resolve(SECRET), active, "still cached");
    c.advance(2);
    assert.deepEqual(await resolve(SECRET), answer, "the bound wins over a longer ttlMs");
    assert.deepEqual(await resolve(SECRET), answer, "negative answers are cached too");
    assert.equal(calls, 2);
  });

  test("a key that expires while cached is refused at once", async () => {
    const c = clock();
    const expiresAt = new Date(c.now() + 1000);
    const resolve = cachedApiKeyResolver(async () => ({ ...active, expiresAt }), { now: c.now });
    assert.equal((await resolve(SECRET)).active, true);
    c.advance(1000);
    assert.deepEqual(await resolve(SECRET), { active: false, reason: ErrorReason.CREDENTIALS_EXPIRED });
  });
});

describe("credentialAuthenticator", () => {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const jwk = { ...(publicKey.export({ format: "jwk" }) as JWK), kid: "k1", alg: "EdDSA", use: "sig" };
  const verifier = new TokenVerifier({ fetchJwks: async () => [jwk], issuer: "iss" });
  const ctx = (authorization?: string) => ({ header: (name: string) => (name === "authorization" ? authorization : undefined) }) as unknown as CallContext;
  const accessToken = (user: string, sid = "s") => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ iss: "iss", aud: "promptcraft", sub: user, tid: TENANT, role: "viewer", sid, jti: randomUUID(), iat: now, nbf: now, exp: now + 300 })
      .setProtectedHeader({ alg: "EdDSA", kid: "k1", typ: "at+jwt" })
      .sign(privateKey);
  };
  const reasonOf = (err: unknown) => (err instanceof UnauthenticatedError ? reasonName(err.reason) : String(err));

  test("pck_ bearers go to the key resolver, never to the JWT verifier", async () => {
    const seen: string[] = [];
    const authenticate = credentialAuthenticator({
      verifier,
      resolveApiKey: async (secret) => (seen.push(secret), { active: true, auth: { tenantId: TENANT, role: "admin", credentialId: KEY_ID, kind: "api_key" } }),
    });
    assert.deepEqual(await authenticate(ctx(`Bearer ${SECRET}`)), { tenantId: TENANT, role: "admin", credentialId: KEY_ID, kind: "api_key" });
    assert.deepEqual(seen, [SECRET]);
  });

  test("refused keys carry their reason; without a resolver a key is invalid", async () => {
    for (const reason of [ErrorReason.CREDENTIALS_REVOKED, ErrorReason.CREDENTIALS_EXPIRED, ErrorReason.TENANT_SUSPENDED, ErrorReason.CREDENTIALS_INVALID]) {
      const authenticate = credentialAuthenticator({ verifier, resolveApiKey: async () => ({ active: false, reason }) });
      await assert.rejects(authenticate(ctx(`Bearer ${SECRET}`)), (err) => reasonOf(err) === reasonName(reason));
    }
    await assert.rejects(credentialAuthenticator({ verifier })(ctx(`Bearer ${SECRET}`)), (err) => reasonOf(err) === "CREDENTIALS_INVALID");
    await assert.rejects(credentialAuthenticator({ verifier })(ctx()), (err) => reasonOf(err) === "CREDENTIALS_MISSING");
  });

  test("access tokens pass the status check, cached per tenant and user", async () => {
    const statuses = new Map<string, StatusCheck>();
    let checks = 0;
    const checkStatus = cachedStatusChecker(async (_t, user) => (checks++, statuses.get(user) ?? { ok: true, role: "viewer" }));
    const authenticate = credentialAuthenticator({ verifier, checkStatus });
    const good = randomUUID();
    const gone = randomUUID();
    statuses.set(gone, { ok: false, reason: ErrorReason.CREDENTIALS_REVOKED });
    assert.equal((await authenticate(ctx(`Bearer ${await accessToken(good)}`))).userId, good);
    assert.equal((await authenticate(ctx(`Bearer ${await accessToken(good)}`))).userId, good);
    await assert.rejects(authenticate(ctx(`Bearer ${await accessToken(gone)}`)), (err) => reasonOf(err) === "CREDENTIALS_REVOKED");
    assert.equal(checks, 2, "one check per (tenant, user) within the bound");
  });

  test("the session is part of the check: a revoked session's token is refused, the user's other session is not", async () => {
    const seen: string[] = [];
    const revoked = randomUUID();
    const live = randomUUID();
    const checkStatus = cachedStatusChecker(async (_t, _u, sid) => (seen.push(sid), sid === revoked ? { ok: false, reason: ErrorReason.CREDENTIALS_REVOKED } : { ok: true, role: "viewer" }));
    const authenticate = credentialAuthenticator({ verifier, checkStatus });
    const user = randomUUID();
    assert.equal((await authenticate(ctx(`Bearer ${await accessToken(user, live)}`))).credentialId, live);
    await assert.rejects(authenticate(ctx(`Bearer ${await accessToken(user, revoked)}`)), (err) => reasonOf(err) === "CREDENTIALS_REVOKED");
    assert.deepEqual(seen, [live, revoked], "one check per session");
  });

  test("the role is the user's current one from the status check, not the token's claim", async () => {
    const c = clock();
    let role: StatusCheck = { ok: true, role: "editor" };
    const checkStatus = cachedStatusChecker(async () => role, { now: c.now });
    const authenticate = credentialAuthenticator({ verifier, checkStatus });
    const token = await accessToken(randomUUID()); // claims viewer
    assert.equal((await authenticate(ctx(`Bearer ${token}`))).role, "editor", "promoted since the token was issued");
    role = { ok: true, role: "viewer" };
    assert.equal((await authenticate(ctx(`Bearer ${token}`))).role, "editor", "cached within the bound");
    c.advance(CREDENTIAL_CACHE_TTL_MS + 1);
    const demoted = await authenticate(ctx(`Bearer ${token}`));
    assert.equal(demoted.role, "viewer", "the demotion holds once the bound has passed");
    assert.equal(await authenticate(ctx(`Bearer ${token}`)), demoted, "an unchanged role is the verifier's own answer");
  });
});

describe("when the credentials' dependency is down", () => {
  /** A port nothing listens on. */
  async function closedPort(): Promise<number> {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as net.AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    return port;
  }
  const unavailableFrom = (dependency: string) => (err: unknown) =>
    err instanceof UnavailableError && unavailableDependency(err) === dependency && reasonName(err.reason) === "DEPENDENCY_UNAVAILABLE" && err.retryAfterMs! > 0;

  test("API keys: identity unreachable is UNAVAILABLE (identity) with a retry delay", async () => {
    const resolve = remoteApiKeyResolver(`http://127.0.0.1:${await closedPort()}`, { timeoutMs: 2000 });
    try {
      await assert.rejects(resolve(SECRET), unavailableFrom("identity"));
    } finally {
      resolve.close?.();
    }
  });

  test("access tokens: the database unreachable is UNAVAILABLE (database) with a retry delay", async () => {
    const db = createKnex({ url: `postgres://x@127.0.0.1:${await closedPort()}/x`, poolMax: 1, acquireTimeoutMs: 500, log: { warn() {}, error() {}, deprecate() {}, debug() {} } });
    try {
      await assert.rejects(databaseStatusChecker(db, "content")(TENANT, randomUUID(), randomUUID()), unavailableFrom("database"));
    } finally {
      await db.destroy();
    }
  });
});
