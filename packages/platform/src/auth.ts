import { createClient } from "@connectrpc/connect";
import { Http2SessionManager } from "@connectrpc/connect-node";
import type { Context, Tracer } from "@opentelemetry/api";
import { createServiceTransport, withTraceContext } from "@promptcraft/client";
import { decodeProtectedHeader, errors as joseErrors, importJWK, jwtVerify, type CryptoKey, type JWK } from "jose";
import type { Logger } from "pino";
import { AuthService } from "@promptcraft/proto/promptcraft/identity/v1/auth_service_pb";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import type { AuthContext, CallContext } from "./context.js";
import { dependencyUnavailable, UnauthenticatedError } from "./errors.js";
import { briefError, LogThrottle } from "./log-throttle.js";

/**
 * Access-token verification, the same in every service (brief §6): tokens are checked locally
 * against identity's JWK Set, never by a call to identity per request.
 *
 * What is pinned: the algorithm (`EdDSA` only: `none`, HS*, RS*, ES* are refused before any key is
 * looked at, so a public key can never be used as an HMAC secret), the key type of every accepted
 * JWK (OKP / Ed25519), the issuer, the audience, `exp` and `nbf` (with {@link CLOCK_TOLERANCE_S}),
 * a lifetime no longer than {@link MAX_ACCESS_TOKEN_TTL_S}, and the claims the platform needs.
 */

/** The audience of every access token. */
export const ACCESS_TOKEN_AUDIENCE = "promptcraft";
/** The only signature algorithm accepted. */
export const ACCESS_TOKEN_ALGORITHM = "EdDSA";
/** The `typ` header of access tokens (RFC 9068): another JWT signed by the same key is not one. */
export const ACCESS_TOKEN_TYPE = "at+jwt";
/** Longest access-token lifetime identity may issue, and verifiers accept. */
export const MAX_ACCESS_TOKEN_TTL_S = 900;
/** Clock skew tolerated on `exp`, `nbf` and `iat`. */
export const CLOCK_TOLERANCE_S = 30;
/**
 * Verified tokens kept per process. An Ed25519 verification costs more than a whole trivial RPC;
 * clients reuse a token for minutes, so most calls are a map lookup. ~1 KiB each at most.
 */
export const VERIFIED_CACHE_MAX = 10_000;
/** Longest bearer token looked at: anything larger is refused unparsed. */
const MAX_TOKEN_LENGTH = 4096;

const ROLES = new Set<AuthContext["role"]>(["owner", "admin", "editor", "viewer"]);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The claims of an access token, as identity issues them. */
export interface AccessTokenClaims {
  iss: string;
  aud: string;
  sub: string;
  tid: string;
  role: AuthContext["role"];
  sid: string;
  jti: string;
  iat: number;
  nbf: number;
  exp: number;
}

/**
 * Returns the current JWK Set (its `keys`); `close` releases its connection, if it holds one. A fetch
 * made for a call gets the call's trace context (the parent of a remote fetch's span).
 */
export type JwksFetcher = ((options?: { traceContext?: Context | undefined }) => Promise<JWK[]>) & { close?(): void };

export interface TokenVerifierOptions {
  /** Where the keys come from: identity's GetJwks, or (in identity) its own key store. */
  fetchJwks: JwksFetcher;
  /** Expected `iss`. */
  issuer: string;
  /** Expected `aud`; {@link ACCESS_TOKEN_AUDIENCE} unless a test says otherwise. */
  audience?: string;
  /** A fetched key set is reused for this long, then refreshed in the background (default 5 min). */
  cacheTtlMs?: number;
  /** An unknown `kid` refreshes the set at most this often (default 30 s, the contract's advice). */
  minRefreshIntervalMs?: number;
  log?: Logger;
  /** Current time in ms (tests). */
  now?: () => number;
}

/** Why a token was refused; mapped to the ErrorInfo reason. Deliberately coarse. */
const missing = () => new UnauthenticatedError("missing credentials", { reason: ErrorReason.CREDENTIALS_MISSING });
const invalid = () => new UnauthenticatedError("invalid credentials", { reason: ErrorReason.CREDENTIALS_INVALID });
const expired = () => new UnauthenticatedError("credentials expired", { reason: ErrorReason.CREDENTIALS_EXPIRED });
const unavailable = (cause?: unknown) => dependencyUnavailable("identity", "cannot verify credentials right now: identity's key set unavailable", cause);
/** With no key set at all, how long after a failed fetch calls fail without fetching again. */
const FAILED_FETCH_BACKOFF_MS = 1000;

/**
 * Verifies access tokens against a cached JWK Set. Keys are imported once per set; an unknown
 * `kid` triggers one refresh (coalesced across concurrent calls, rate-limited), and keys that
 * leave the set stop verifying at the next refresh.
 */
export class TokenVerifier {
  private keys = new Map<string, CryptoKey>();
  private fetchedAt = -Infinity;
  /** When a fetch last failed: with no keys at all, calls fail fast for a moment instead of each fetching. */
  private lastFailure = -Infinity;
  /** When an unknown `kid` last caused a refresh (background refreshes do not count). */
  private lastKidRefresh = -Infinity;
  private inflight: Promise<void> | undefined;
  private readonly audience: string;
  private readonly cacheTtlMs: number;
  private readonly minRefreshIntervalMs: number;
  private readonly now: () => number;
  /** While identity is unreachable, failed fetches are logged once per window. */
  private readonly quiet: LogThrottle | undefined;

  constructor(private readonly options: TokenVerifierOptions) {
    this.quiet = options.log && new LogThrottle(options.log);
    this.audience = options.audience ?? ACCESS_TOKEN_AUDIENCE;
    this.cacheTtlMs = options.cacheTtlMs ?? 300_000;
    this.minRefreshIntervalMs = options.minRefreshIntervalMs ?? 30_000;
    this.now = options.now ?? Date.now;
  }

  /**
   * Fetches the key set now (e.g. at start, to warm the cache). Rejects if the fetch fails. Concurrent
   * refreshes share one fetch, traced under the first one's `traceContext`.
   */
  async refresh(traceContext?: Context): Promise<void> {
    this.inflight ??= this.load(traceContext).finally(() => (this.inflight = undefined));
    return this.inflight;
  }

  /** The `kid`s currently cached (tests, diagnostics). */
  cachedKids(): string[] {
    return [...this.keys.keys()];
  }

  /**
   * Verifies a compact JWS and returns the caller. Throws UnauthenticatedError (CREDENTIALS_INVALID
   * or CREDENTIALS_EXPIRED) for any bad token; rejects with another error only if the key set
   * cannot be fetched at all. `traceContext` (the call's) is the parent of a key-set fetch the call
   * waits for.
   */
  async verify(token: string, traceContext?: Context): Promise<AuthContext> {
    const hit = this.verified.get(token);
    if (hit) {
      // The same bytes verified before: the verdict stands while the token has not expired and its
      // key is still published (a retired key drops its tokens). Keep the key set's refresh going.
      const now = this.now();
      if (now - this.fetchedAt > this.cacheTtlMs) void this.keyFor(hit.kid).catch(() => undefined);
      if (now < hit.expiresAtMs && this.keys.has(hit.kid)) return hit.auth;
      this.verified.delete(token);
    }
    return this.verifyFully(token, traceContext);
  }

  /** Verified tokens by their exact text, oldest first (Map order), at most {@link VERIFIED_CACHE_MAX}. */
  private readonly verified = new Map<string, { auth: AuthContext; kid: string; expiresAtMs: number }>();

  private remember(token: string, kid: string, exp: number, auth: AuthContext): AuthContext {
    const frozen = Object.freeze(auth);
    if (this.verified.size >= VERIFIED_CACHE_MAX) {
      const oldest = this.verified.keys().next().value;
      if (oldest !== undefined) this.verified.delete(oldest);
    }
    this.verified.set(token, { auth: frozen, kid, expiresAtMs: (exp + CLOCK_TOLERANCE_S) * 1000 });
    return frozen;
  }

  private async verifyFully(token: string, traceContext: Context | undefined): Promise<AuthContext> {
    if (token.length > MAX_TOKEN_LENGTH || token.split(".").length !== 3) throw invalid();
    let header;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      throw invalid();
    }
    // Pinned before any key is chosen: `none`, HS256 with a public key as secret, RS*, ES*… never
    // reach a verifier.
    if (header.alg !== ACCESS_TOKEN_ALGORITHM || typeof header.kid !== "string" || header.kid.length === 0) throw invalid();
    if (header.jku !== undefined || header.jwk !== undefined || header.x5u !== undefined || header.x5c !== undefined) throw invalid();
    const key = await this.keyFor(header.kid, traceContext);
    if (!key) throw invalid();

    let payload;
    try {
      ({ payload } = await jwtVerify(token, key, {
        algorithms: [ACCESS_TOKEN_ALGORITHM],
        typ: ACCESS_TOKEN_TYPE,
        issuer: this.options.issuer,
        audience: this.audience,
        clockTolerance: CLOCK_TOLERANCE_S,
        maxTokenAge: MAX_ACCESS_TOKEN_TTL_S + CLOCK_TOLERANCE_S,
        requiredClaims: ["iss", "aud", "sub", "tid", "role", "sid", "jti", "iat", "nbf", "exp"],
        currentDate: new Date(this.now()),
      }));
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) throw expired();
      throw invalid();
    }
    const { sub, tid, role, sid, jti, iat, exp } = payload as Partial<Record<keyof AccessTokenClaims, unknown>>;
    if (typeof sub !== "string" || !UUID.test(sub)) throw invalid();
    if (typeof tid !== "string" || !UUID.test(tid)) throw invalid();
    if (typeof sid !== "string" || sid.length === 0 || sid.length > 100) throw invalid();
    if (typeof jti !== "string" || jti.length === 0) throw invalid();
    if (typeof role !== "string" || !ROLES.has(role as AuthContext["role"])) throw invalid();
    // A token that claims a longer life than identity may issue was not issued by identity.
    if (typeof iat !== "number" || typeof exp !== "number" || exp - iat > MAX_ACCESS_TOKEN_TTL_S) throw invalid();
    return this.remember(token, header.kid, exp, {
      tenantId: tid.toLowerCase(),
      userId: sub.toLowerCase(),
      role: role as AuthContext["role"],
      credentialId: sid,
      kind: "access_token",
    });
  }

  private async keyFor(kid: string, traceContext?: Context): Promise<CryptoKey | undefined> {
    const now = this.now();
    if (this.fetchedAt === -Infinity) {
      // First use: nothing to verify with yet. Not the caller's fault: UNAVAILABLE, retryable. While
      // identity is unreachable, at most one fetch per FAILED_FETCH_BACKOFF_MS, not one per call.
      if (!this.inflight && now - this.lastFailure < FAILED_FETCH_BACKOFF_MS) throw unavailable();
      await this.refresh(traceContext).catch((err: unknown) => {
        this.quiet?.write("warn", "jwks", { error: briefError(err) }, "JWKS fetch failed");
        throw unavailable(err);
      });
    } else if (now - this.fetchedAt > this.cacheTtlMs) {
      // Stale: refresh in the background, keep serving from the cache meanwhile. Not the call's
      // work (it does not wait): a trace of its own.
      this.refresh().catch((err: unknown) => this.options.log?.warn({ err }, "JWKS refresh failed; using the cached keys"));
    }
    const key = this.keys.get(kid);
    if (key) return key;
    // Unknown kid: at most one refresh per interval, whoever asks.
    if (this.inflight) {
      await this.inflight.catch(() => undefined);
    } else if (now - this.lastKidRefresh >= this.minRefreshIntervalMs) {
      this.lastKidRefresh = now;
      await this.refresh(traceContext).catch((err: unknown) => this.options.log?.warn({ err }, "JWKS refresh failed"));
    }
    return this.keys.get(kid);
  }

  private async load(traceContext: Context | undefined): Promise<void> {
    let jwks;
    try {
      jwks = await this.options.fetchJwks({ traceContext });
    } catch (err) {
      this.lastFailure = this.now();
      throw err;
    }
    const next = new Map<string, CryptoKey>();
    for (const jwk of jwks) {
      // Only Ed25519 signing keys are ever usable, whatever else a key set might carry.
      if (jwk.kty !== "OKP" || jwk.crv !== "Ed25519" || typeof jwk.kid !== "string" || typeof jwk.x !== "string") continue;
      if ((jwk.alg !== undefined && jwk.alg !== ACCESS_TOKEN_ALGORITHM) || (jwk.use !== undefined && jwk.use !== "sig")) continue;
      if (jwk.d !== undefined) continue; // a private key has no business in a JWK Set
      try {
        const key = await importJWK({ kty: "OKP", crv: "Ed25519", x: jwk.x }, ACCESS_TOKEN_ALGORITHM);
        if (!(key instanceof Uint8Array)) next.set(jwk.kid, key);
      } catch (err) {
        this.options.log?.warn({ err, kid: jwk.kid }, "JWKS: skipping a key that does not import");
      }
    }
    this.keys = next;
    this.fetchedAt = this.now();
  }
}

/** Reads `authorization: Bearer <token>`; undefined when absent. Throws on a malformed header. */
export function bearerToken(ctx: Pick<CallContext, "header">): string | undefined {
  const value = ctx.header("authorization");
  if (value === undefined || value === "") return undefined;
  const match = /^Bearer[ ]+([A-Za-z0-9._~+/=-]+)[ ]*$/i.exec(value);
  if (!match) throw invalid();
  return match[1];
}

/**
 * The pipeline's `authenticate` hook for access tokens: no credential -> UNAUTHENTICATED
 * (CREDENTIALS_MISSING), a bad one -> UNAUTHENTICATED (CREDENTIALS_INVALID / CREDENTIALS_EXPIRED).
 */
export function accessTokenAuthenticator(verifier: TokenVerifier): (ctx: CallContext) => Promise<AuthContext> {
  return async (ctx) => {
    const token = bearerToken(ctx);
    if (token === undefined) throw missing();
    return verifier.verify(token, ctx.traceContext);
  };
}

/**
 * Fetches identity's JWK Set through `AuthService.GetJwks` over gRPC at `identityUrl` (the
 * `IDENTITY_URL` of every service, e.g. `http://identity:50051`), traced with `tracer` when given.
 */
export function remoteJwks(identityUrl: string, options: { timeoutMs?: number; tracer?: Tracer | undefined } = {}): JwksFetcher {
  // Fetches are minutes apart: let the HTTP/2 connection go when idle, and close it on shutdown.
  const sessionManager = new Http2SessionManager(identityUrl, { idleConnectionTimeoutMs: 10_000 });
  const transport = createServiceTransport(identityUrl, { sessionManager, timeoutMs: options.timeoutMs ?? 5000, tracer: options.tracer });
  const client = createClient(AuthService, transport);
  const fetcher: JwksFetcher = async (call) => {
    const response = await client.getJwks({}, withTraceContext(call?.traceContext));
    return response.keys.map((k) => ({ kty: k.kty, kid: k.kid, use: k.use, alg: k.alg, crv: k.crv, x: k.x, ...(k.y ? { y: k.y } : {}) }));
  };
  return Object.assign(fetcher, { close: () => sessionManager.abort() });
}
