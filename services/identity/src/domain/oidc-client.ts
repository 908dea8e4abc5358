import { createHash, randomBytes } from "node:crypto";
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTPayload } from "jose";
import { UnauthenticatedError, UnavailableError } from "@promptcraft/platform";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";

/**
 * The relying-party side of OpenID Connect: discovery (cached), the authorization URL (code flow,
 * PKCE S256, state, nonce), the code exchange at the token endpoint, and ID token verification
 * against the provider's JWKS. No database here.
 */

/** How long a discovery document is reused before it is fetched again. */
export const DISCOVERY_TTL_MS = 10 * 60_000;
/** How long one request to a provider may take. */
export const PROVIDER_TIMEOUT_MS = 5000;
/** Leeway for `exp`, `iat` and `nbf` of ID tokens (clock skew between us and the provider). */
export const ID_TOKEN_CLOCK_TOLERANCE_S = 60;
/** Most discovery documents and key sets kept in memory (one per issuer); the oldest go first. */
const CACHE_MAX = 1000;

/**
 * Signature algorithms accepted for ID tokens, whatever the provider advertises: asymmetric only.
 * `none` is never acceptable, and an HMAC algorithm would let anyone who knows the client secret
 * (or, with a confused verifier, the public key) forge tokens.
 */
const ASYMMETRIC_ALGORITHMS = new Set(["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"]);

/** The fields of a discovery document (OpenID Connect Discovery 1.0 §3) that the flow uses. */
export interface DiscoveryDocument {
  issuer: string;
  authorization_endpoint: string;
  token_endpoint: string;
  jwks_uri: string;
  id_token_signing_alg_values_supported?: string[];
  token_endpoint_auth_methods_supported?: string[];
  code_challenge_methods_supported?: string[];
}

/** UNAVAILABLE (OIDC_PROVIDER_ERROR): the provider could not be used right now. */
export function providerError(issuer: string, message: string, providerErrorCode?: string): UnavailableError {
  return new UnavailableError(`OIDC provider ${issuer}: ${message}`, {
    reason: ErrorReason.OIDC_PROVIDER_ERROR,
    metadata: { issuer, ...(providerErrorCode ? { provider_error: providerErrorCode } : {}) },
  });
}

/** UNAUTHENTICATED (OIDC_ID_TOKEN_INVALID). */
export function idTokenInvalid(why: string): UnauthenticatedError {
  return new UnauthenticatedError(`the provider's ID token is not acceptable: ${why}`, { reason: ErrorReason.OIDC_ID_TOKEN_INVALID });
}

const LOOPBACK_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);

/** Whether a provider URL may be used: HTTPS, or HTTP on a loopback host (local providers, tests); no credentials or fragment. */
export function isAcceptableProviderUrl(value: string): boolean {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  if (url.username || url.password || url.hash) return false;
  return url.protocol === "https:" || (url.protocol === "http:" && LOOPBACK_HOSTS.has(url.hostname));
}

/** `<issuer>/.well-known/openid-configuration` (the issuer may have a path; a trailing slash is not doubled). */
export function discoveryUrl(issuer: string): string {
  return `${issuer.replace(/\/+$/, "")}/.well-known/openid-configuration`;
}

function stringArray(value: unknown): string[] | undefined {
  return Array.isArray(value) && value.every((v) => typeof v === "string") ? value : undefined;
}

/** Checks a fetched discovery document for `issuer`; the problem, or undefined when usable. */
export function discoveryProblem(issuer: string, doc: unknown): string | undefined {
  if (doc === null || typeof doc !== "object") return "the discovery document is not a JSON object";
  const d = doc as Record<string, unknown>;
  // OpenID Connect Discovery §4.3: the issuer in the document must be exactly the one configured.
  if (d.issuer !== issuer) return `the discovery document names issuer ${JSON.stringify(d.issuer)}, not ${JSON.stringify(issuer)}`;
  for (const field of ["authorization_endpoint", "token_endpoint", "jwks_uri"]) {
    const v = d[field];
    if (typeof v !== "string" || !isAcceptableProviderUrl(v)) return `${field} is missing or not an HTTPS URL`;
  }
  for (const field of ["id_token_signing_alg_values_supported", "token_endpoint_auth_methods_supported", "code_challenge_methods_supported"]) {
    if (d[field] !== undefined && stringArray(d[field]) === undefined) return `${field} is not a list of strings`;
  }
  const methods = stringArray(d.code_challenge_methods_supported);
  if (methods !== undefined && !methods.includes("S256")) return "the provider does not support PKCE with S256";
  if (idTokenAlgorithms(d as unknown as DiscoveryDocument).length === 0) return "the provider signs ID tokens with no algorithm we accept";
  return undefined;
}

/** The algorithms an ID token of this provider may use: what it advertises (RS256 when silent, as the spec requires), asymmetric only. */
export function idTokenAlgorithms(doc: DiscoveryDocument): string[] {
  return (doc.id_token_signing_alg_values_supported ?? ["RS256"]).filter((alg) => ASYMMETRIC_ALGORITHMS.has(alg));
}

/**
 * How we authenticate at the token endpoint. With a secret: `client_secret_basic` unless the
 * provider lists only `client_secret_post` (Basic is the default of OAuth and of Discovery when the
 * list is absent); a provider that lists neither gets the public-client form. Without a secret: none.
 */
export function tokenEndpointAuthMethod(supported: string[] | undefined, hasSecret: boolean): "client_secret_basic" | "client_secret_post" | "none" {
  if (!hasSecret) return "none";
  const list = supported ?? ["client_secret_basic"];
  if (list.includes("client_secret_basic")) return "client_secret_basic";
  if (list.includes("client_secret_post")) return "client_secret_post";
  return "none";
}

/** A PKCE pair (RFC 7636): a 43-character verifier and its S256 challenge. */
export function pkcePair(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString("base64url");
  return { verifier, challenge: createHash("sha256").update(verifier).digest("base64url") };
}

/** A random value for `state` or `nonce`: 256 bits, base64url. */
export function randomToken(): string {
  return randomBytes(32).toString("base64url");
}

/** The provider's authorization URL for one login attempt. */
export function authorizationUrl(
  doc: DiscoveryDocument,
  p: { clientId: string; redirectUri: string; scopes: string[]; state: string; nonce: string; codeChallenge: string; loginHint: string },
): string {
  const url = new URL(doc.authorization_endpoint);
  const scope = ["openid", ...p.scopes.filter((s) => s !== "openid")].join(" ");
  url.searchParams.set("response_type", "code");
  url.searchParams.set("client_id", p.clientId);
  url.searchParams.set("redirect_uri", p.redirectUri);
  url.searchParams.set("scope", scope);
  url.searchParams.set("state", p.state);
  url.searchParams.set("nonce", p.nonce);
  url.searchParams.set("code_challenge", p.codeChallenge);
  url.searchParams.set("code_challenge_method", "S256");
  if (p.loginHint) url.searchParams.set("login_hint", p.loginHint);
  return url.href;
}

/** The claims of a verified ID token that login uses. */
export interface IdTokenClaims {
  issuer: string;
  subject: string;
  email: string | undefined;
  emailVerified: boolean;
  name: string | undefined;
}

/** Bounded map: drops the oldest entry when full. */
function remember<V>(map: Map<string, V>, key: string, value: V): V {
  if (map.size >= CACHE_MAX) map.delete(map.keys().next().value!);
  map.set(key, value);
  return value;
}

/**
 * One per process: discovery documents by issuer (TTL {@link DISCOVERY_TTL_MS}; failures are not
 * cached) and the remote key sets by `jwks_uri` (jose refetches on an unknown `kid`, at most every
 * 30 s, and caches keys for 10 minutes).
 */
export class OidcClient {
  private readonly discovered = new Map<string, { doc: DiscoveryDocument; expiresAt: number }>();
  private readonly keySets = new Map<string, ReturnType<typeof createRemoteJWKSet>>();

  /** The issuer's discovery document; UNAVAILABLE (OIDC_PROVIDER_ERROR) when it cannot be fetched or is unusable. */
  async discover(issuer: string, now = Date.now()): Promise<DiscoveryDocument> {
    const cached = this.discovered.get(issuer);
    if (cached && cached.expiresAt > now) return cached.doc;
    let doc: unknown;
    try {
      const res = await fetch(discoveryUrl(issuer), { headers: { accept: "application/json" }, redirect: "error", signal: AbortSignal.timeout(PROVIDER_TIMEOUT_MS) });
      if (!res.ok) throw providerError(issuer, `discovery answered HTTP ${res.status}`);
      doc = await res.json();
    } catch (err) {
      if (err instanceof UnavailableError) throw err;
      throw providerError(issuer, `discovery failed: ${(err as Error).message}`);
    }
    const problem = discoveryProblem(issuer, doc);
    if (problem) throw providerError(issuer, problem);
    this.discovered.delete(issuer);
    return remember(this.discovered, issuer, { doc: doc as DiscoveryDocument, expiresAt: now + DISCOVERY_TTL_MS }).doc;
  }

  /**
   * Exchanges an authorization code (with the PKCE verifier) for the provider's ID token.
   * UNAVAILABLE (OIDC_PROVIDER_ERROR, with the OAuth `error` as `provider_error`) when refused.
   */
  async exchangeCode(
    doc: DiscoveryDocument,
    client: { clientId: string; clientSecret: string | null },
    grant: { code: string; redirectUri: string; codeVerifier: string },
  ): Promise<string> {
    const body = new URLSearchParams({ grant_type: "authorization_code", code: grant.code, redirect_uri: grant.redirectUri, code_verifier: grant.codeVerifier });
    const headers: Record<string, string> = { "content-type": "application/x-www-form-urlencoded", accept: "application/json" };
    const method = tokenEndpointAuthMethod(doc.token_endpoint_auth_methods_supported, client.clientSecret !== null);
    if (method === "client_secret_basic") {
      // RFC 6749 §2.3.1: both parts form-urlencoded before Base64.
      const pair = `${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.clientSecret!)}`;
      headers.authorization = `Basic ${Buffer.from(pair).toString("base64")}`;
    } else {
      body.set("client_id", client.clientId);
      if (method === "client_secret_post") body.set("client_secret", client.clientSecret!);
    }
    let res: Response;
    let json: unknown;
    try {
      res = await fetch(doc.token_endpoint, { method: "POST", headers, body, redirect: "error", signal: AbortSignal.timeout(PROVIDER_TIMEOUT_MS) });
      json = await res.json().catch(() => undefined);
    } catch (err) {
      throw providerError(doc.issuer, `token request failed: ${(err as Error).message}`);
    }
    const answer = (json ?? {}) as { error?: unknown; id_token?: unknown };
    if (!res.ok) {
      const code = typeof answer.error === "string" ? answer.error.slice(0, 100) : undefined;
      throw providerError(doc.issuer, `the token endpoint refused the code (HTTP ${res.status})`, code);
    }
    if (typeof answer.id_token !== "string") throw providerError(doc.issuer, "the token response has no id_token");
    return answer.id_token;
  }

  /**
   * Verifies an ID token: signature with a key of the provider's JWKS and an algorithm it
   * advertises (asymmetric only), `iss` = the configured issuer, `aud` contains the client id (and
   * `azp` is the client id when there are several audiences), `exp`/`iat`/`nbf`, and `nonce` = the
   * attempt's. UNAUTHENTICATED (OIDC_ID_TOKEN_INVALID) otherwise; UNAVAILABLE when the JWKS
   * cannot be fetched.
   */
  async verifyIdToken(doc: DiscoveryDocument, idToken: string, expected: { issuer: string; clientId: string; nonce: string }): Promise<IdTokenClaims> {
    const keySet = this.keySets.get(doc.jwks_uri) ?? remember(this.keySets, doc.jwks_uri, createRemoteJWKSet(new URL(doc.jwks_uri), { timeoutDuration: PROVIDER_TIMEOUT_MS }));
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(idToken, keySet, {
        issuer: expected.issuer,
        audience: expected.clientId,
        algorithms: idTokenAlgorithms(doc),
        clockTolerance: ID_TOKEN_CLOCK_TOLERANCE_S,
        requiredClaims: ["sub", "iat", "exp"],
      }));
    } catch (err) {
      // The key set could not be fetched or used (network, timeout, HTTP error, not a JWK Set): the
      // provider's fault, not the token's. A token that no key of a good set verifies is the token's.
      const keySetFailure =
        !(err instanceof joseErrors.JOSEError) || err instanceof joseErrors.JWKSTimeout || err instanceof joseErrors.JWKSInvalid || err.code === "ERR_JOSE_GENERIC";
      if (keySetFailure) {
        throw providerError(doc.issuer, `its JWKS could not be used: ${(err as Error).message}`);
      }
      throw idTokenInvalid(err.message);
    }
    if (typeof payload.nonce !== "string" || payload.nonce !== expected.nonce) throw idTokenInvalid("the nonce does not match this login");
    if (Array.isArray(payload.aud) && payload.aud.length > 1 && payload.azp !== expected.clientId) {
      throw idTokenInvalid("several audiences and azp is not this client");
    }
    const subject = payload.sub!;
    if (subject.length === 0 || subject.length > 255) throw idTokenInvalid("sub must be 1-255 characters");
    const email = typeof payload.email === "string" ? payload.email : undefined;
    // Some providers send the boolean as a string.
    const emailVerified = payload.email_verified === true || payload.email_verified === "true";
    const name = typeof payload.name === "string" ? payload.name : undefined;
    return { issuer: expected.issuer, subject, email, emailVerified, name };
  }
}
