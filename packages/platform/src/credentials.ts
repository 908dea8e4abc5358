import { createHash } from "node:crypto";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { Http2SessionManager } from "@connectrpc/connect-node";
import type { Context, Tracer } from "@opentelemetry/api";
import { createServiceTransport, withTraceContext } from "@promptcraft/client";
import { dbTimeFromTimestamp } from "./time.js";
import { isConnectionError, readAsTenant, type Knex, type ServiceName } from "@promptcraft/db";
import { AuthService } from "@promptcraft/proto/promptcraft/identity/v1/auth_service_pb";
import { Role } from "@promptcraft/proto/promptcraft/identity/v1/resources_pb";
import { ErrorInfoSchema } from "@promptcraft/proto/google/rpc/error_details_pb";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import { bearerToken, type TokenVerifier } from "./auth.js";
import type { AuthContext, CallContext } from "./context.js";
import { dependencyUnavailable, UnauthenticatedError } from "./errors.js";

/**
 * Credentials beyond the signature of an access token (issue 3, item 7):
 *
 * - **API keys** (`pck_…` bearers) are resolved by identity (`AuthService.IntrospectCredential`, or
 *   identity's own store inside identity) and the answer — positive or negative — is cached for at
 *   most {@link CREDENTIAL_CACHE_TTL_MS}: a revoked key stops working within that bound everywhere.
 * - **Access tokens** are verified locally (auth.ts), then the status of their tenant, user and
 *   session is checked against the non-secret `tenant.status` / `app_user.status, role, deleted_at` /
 *   `session.revoked_at, absolute_expires_at` columns, read with the service's own database role
 *   (every service may) and cached for the same bound per (tenant, user, session): a suspended
 *   tenant's, a deleted/deactivated user's or a logged-out/revoked session's token is refused
 *   within seconds, without any call to identity. The caller's role is the user's role from that
 *   same read, not the token's `role` claim (which only says what it was when the token was
 *   issued): a demotion or promotion holds on every service within the same bound (issue 9;
 *   docs/decisions.md).
 *
 * Both caches are bounded ({@link CREDENTIAL_CACHE_MAX_ENTRIES}, oldest evicted first) and coalesce
 * concurrent misses for the same key into one lookup. A cache hit costs one `Map.get`.
 */

/** Longest time an answer about a credential is reused: revocation/suspension takes effect within it. */
export const CREDENTIAL_CACHE_TTL_MS = 5000;
/** Entries per cache; beyond it the oldest entry goes. */
export const CREDENTIAL_CACHE_MAX_ENTRIES = 10_000;
/** Prefix of API key secrets (docs/api.md). */
export const API_KEY_PREFIX = "pck_";

/** Identity's answer about an API key. */
export type ApiKeyResolution =
  | { active: true; auth: AuthContext; /** when the key expires, if it does (a DbTime: to the microsecond) */ expiresAt?: Date }
  | { active: false; reason: ErrorReason };

/**
 * Resolves an API key secret; rejects only when it cannot tell (identity unreachable: UNAVAILABLE,
 * DEPENDENCY_UNAVAILABLE with RetryInfo). `traceContext` is the calling RPC's, the parent of a
 * remote lookup's span.
 */
export type ApiKeyResolver = ((secret: string, traceContext?: Context) => Promise<ApiKeyResolution>) & { close?(): void };

/** Whether a tenant, user and session may use their access tokens, and the user's current role. */
export type StatusCheck = { ok: true; role: AuthContext["role"] } | { ok: false; reason: ErrorReason };
/**
 * Checks an access token's tenant, user and session (`sid`); rejects only when it cannot tell (the
 * database is unreachable: UNAVAILABLE, DEPENDENCY_UNAVAILABLE with RetryInfo).
 */
export type StatusChecker = (tenantId: string, userId: string, sessionId: string) => Promise<StatusCheck>;

const REFUSAL_MESSAGES: Partial<Record<ErrorReason, string>> = {
  [ErrorReason.CREDENTIALS_EXPIRED]: "credentials expired",
  [ErrorReason.CREDENTIALS_REVOKED]: "credentials revoked",
  [ErrorReason.TENANT_SUSPENDED]: "tenant suspended",
};

/** The UNAUTHENTICATED error sent for a refused credential. Says why, never which check in detail. */
export function refusal(reason: ErrorReason): UnauthenticatedError {
  const known = REFUSAL_MESSAGES[reason] !== undefined;
  return new UnauthenticatedError(REFUSAL_MESSAGES[reason] ?? "invalid credentials", {
    reason: known ? reason : ErrorReason.CREDENTIALS_INVALID,
  });
}


/**
 * A small TTL cache with a size bound and coalesced loads. Entries expire `ttlMs` after they were
 * loaded (or earlier, if the loader says so); when full, the oldest entry is dropped.
 */
export class ExpiringCache<V> {
  private readonly entries = new Map<string, { value: V; expiresAt: number }>();
  private readonly inflight = new Map<string, Promise<V>>();

  constructor(
    private readonly options: { ttlMs: number; maxEntries: number; now?: () => number },
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** The cached value of `key`, or the loader's (one load per key at a time). */
  async get(key: string, load: () => Promise<V>, ttlOf?: (value: V) => number | undefined): Promise<V> {
    const now = (this.options.now ?? Date.now)();
    const hit = this.entries.get(key);
    if (hit !== undefined) {
      if (hit.expiresAt > now) return hit.value;
      this.entries.delete(key);
    }
    let pending = this.inflight.get(key);
    if (pending === undefined) {
      pending = load().then(
        (value) => {
          this.inflight.delete(key);
          const ttl = Math.min(this.options.ttlMs, Math.max(0, ttlOf?.(value) ?? this.options.ttlMs));
          if (ttl > 0) {
            if (this.entries.size >= this.options.maxEntries) {
              const oldest = this.entries.keys().next();
              if (!oldest.done) this.entries.delete(oldest.value);
            }
            this.entries.set(key, { value, expiresAt: (this.options.now ?? Date.now)() + ttl });
          }
          return value;
        },
        (err: unknown) => {
          this.inflight.delete(key);
          throw err;
        },
      );
      this.inflight.set(key, pending);
    }
    return pending;
  }

  /** Forgets everything (tests). */
  clear(): void {
    this.entries.clear();
  }
}

/**
 * Wraps a resolver with the bounded, short-lived cache (keyed by the secret's SHA-256, never the
 * secret). Concurrent misses share one lookup, traced under the first caller's context.
 */
export function cachedApiKeyResolver(
  resolve: ApiKeyResolver,
  options: { ttlMs?: number; maxEntries?: number; now?: () => number } = {},
): ApiKeyResolver & { cache: ExpiringCache<ApiKeyResolution> } {
  const now = options.now ?? Date.now;
  const cache = new ExpiringCache<ApiKeyResolution>({
    ttlMs: Math.min(options.ttlMs ?? CREDENTIAL_CACHE_TTL_MS, CREDENTIAL_CACHE_TTL_MS),
    maxEntries: options.maxEntries ?? CREDENTIAL_CACHE_MAX_ENTRIES,
    now,
  });
  const cached = async (secret: string, traceContext?: Context): Promise<ApiKeyResolution> => {
    const key = createHash("sha256").update(secret).digest("base64url");
    const answer = await cache.get(key, () => resolve(secret, traceContext), (r) => (r.active && r.expiresAt !== undefined ? r.expiresAt.getTime() - now() : undefined));
    // A key that expired while cached is refused at once.
    if (answer.active && answer.expiresAt !== undefined && answer.expiresAt.getTime() <= now()) return { active: false, reason: ErrorReason.CREDENTIALS_EXPIRED };
    return answer;
  };
  return Object.assign(cached, { cache, close: () => resolve.close?.() });
}

/** Wraps a status checker with the bounded, short-lived cache, per (tenant, user, session). */
export function cachedStatusChecker(
  check: StatusChecker,
  options: { ttlMs?: number; maxEntries?: number; now?: () => number } = {},
): StatusChecker & { cache: ExpiringCache<StatusCheck> } {
  const cache = new ExpiringCache<StatusCheck>({
    ttlMs: Math.min(options.ttlMs ?? CREDENTIAL_CACHE_TTL_MS, CREDENTIAL_CACHE_TTL_MS),
    maxEntries: options.maxEntries ?? CREDENTIAL_CACHE_MAX_ENTRIES,
    now: options.now,
  });
  const cached = (tenantId: string, userId: string, sessionId: string) =>
    cache.get(`${tenantId}/${userId}/${sessionId}`, () => check(tenantId, userId, sessionId));
  return Object.assign(cached, { cache });
}

const ROLES: ReadonlySet<string> = new Set<AuthContext["role"]>(["owner", "admin", "editor", "viewer"]);
const isRole = (role: string | null): role is AuthContext["role"] => role !== null && ROLES.has(role);

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

interface StatusRow {
  tenant_status: string;
  user_status: string | null;
  user_role: string | null;
  deleted_at: Date | null;
  session_revoked: boolean | null;
  session_ended: boolean | null;
}

/**
 * Reads the status of a tenant, a user and a session through `service`'s own role (the non-secret
 * columns every service may read): the tenant must exist and be active, the user exist, be active
 * and not deleted, and the session (the `session` row whose id is the token's `sid`, the root of
 * its refresh-token family) not be revoked nor past its absolute expiry. Identity writes the
 * session before it signs a token for it; a `sid` without a row (pruned long after its tokens
 * expired, or minted by a test) is judged by tenant and user alone, a `sid` that is not a UUID is
 * not identity's. The answer carries the user's current role.
 */
export function databaseStatusChecker(db: Knex, service: ServiceName): StatusChecker {
  return async (tenantId, userId, sessionId) => {
    if (!UUID.test(sessionId)) return { ok: false, reason: ErrorReason.CREDENTIALS_INVALID };
    let row: StatusRow | undefined;
    try {
      // One read-only round trip (readAsTenant): this runs on every call whose cached status is stale.
      const rows = await readAsTenant<StatusRow>(
        db,
        { service, tenantId, userId },
        `select t.status as tenant_status, u.status as user_status, u.role as user_role, u.deleted_at,
           s.revoked_at is not null as session_revoked, s.absolute_expires_at <= now() as session_ended
         from tenant t
         left join app_user u on u.tenant_id = t.id and u.id = ?
         left join session s on s.tenant_id = t.id and s.id = ?
         where t.id = ?`,
        [userId, sessionId, tenantId],
      );
      row = rows[0];
    } catch (err) {
      // Any other failure is a bug (INTERNAL, logged with its cause), not an outage.
      if (isConnectionError(err)) throw dependencyUnavailable("database", "cannot verify credentials right now: database unavailable", err);
      throw err;
    }
    if (!row) return { ok: false, reason: ErrorReason.CREDENTIALS_INVALID };
    if (row.tenant_status !== "active") return { ok: false, reason: ErrorReason.TENANT_SUSPENDED };
    if (row.user_status !== "active" || row.deleted_at !== null) return { ok: false, reason: ErrorReason.CREDENTIALS_REVOKED };
    if (row.session_revoked === true) return { ok: false, reason: ErrorReason.CREDENTIALS_REVOKED };
    if (row.session_ended === true) return { ok: false, reason: ErrorReason.CREDENTIALS_EXPIRED };
    if (!isRole(row.user_role)) return { ok: false, reason: ErrorReason.CREDENTIALS_INVALID };
    return { ok: true, role: row.user_role };
  };
}

const ROLE_NAMES: Partial<Record<Role, AuthContext["role"]>> = {
  [Role.OWNER]: "owner",
  [Role.ADMIN]: "admin",
  [Role.EDITOR]: "editor",
  [Role.VIEWER]: "viewer",
};

/**
 * Resolves API keys through identity's `AuthService.IntrospectCredential` over gRPC at
 * `identityUrl`, traced with `tracer` when given. The key itself is the bearer of that call: identity
 * answers only to the holder of the key (a refused key comes back as UNAUTHENTICATED with its reason).
 */
export function remoteApiKeyResolver(identityUrl: string, options: { timeoutMs?: number; tracer?: Tracer | undefined } = {}): ApiKeyResolver {
  const sessionManager = new Http2SessionManager(identityUrl, { idleConnectionTimeoutMs: 30_000 });
  const transport = createServiceTransport(identityUrl, { sessionManager, timeoutMs: options.timeoutMs ?? 3000, tracer: options.tracer });
  const client = createClient(AuthService, transport);
  const resolve = async (secret: string, traceContext?: Context): Promise<ApiKeyResolution> => {
    let response;
    try {
      response = await client.introspectCredential(
        { credential: secret },
        { headers: { authorization: `Bearer ${secret}` }, ...withTraceContext(traceContext) },
      );
    } catch (e) {
      const err = ConnectError.from(e);
      if (err.code === Code.Unauthenticated) {
        const name = err.findDetails(ErrorInfoSchema)[0]?.reason ?? "";
        const reason = (ErrorReason as unknown as Record<string, ErrorReason | undefined>)[name] ?? ErrorReason.CREDENTIALS_INVALID;
        return { active: false, reason: reason === ErrorReason.CREDENTIALS_MISSING ? ErrorReason.CREDENTIALS_INVALID : reason };
      }
      // Identity is down, unreachable, or failed: no answer about the key. The pipeline logs the
      // failed calls (once per window, not once per call).
      throw dependencyUnavailable("identity", "cannot verify credentials right now: identity unavailable", err);
    }
    const p = response.principal;
    const role = p ? ROLE_NAMES[p.role] : undefined;
    if (!response.active || !p || !role || p.apiKeyId === "" || p.tenantId === "") return { active: false, reason: ErrorReason.CREDENTIALS_INVALID };
    return {
      active: true,
      auth: { tenantId: p.tenantId, role, credentialId: p.apiKeyId, kind: "api_key" },
      ...(p.expireTime ? { expiresAt: dbTimeFromTimestamp(p.expireTime, "principal.expire_time") } : {}),
    };
  };
  return Object.assign(resolve, { close: () => sessionManager.abort() });
}

/**
 * The pipeline's `authenticate` hook: `pck_…` bearers are API keys (resolved, cached); anything
 * else must be an access token (verified locally), whose tenant, user and session must still be
 * active; with a status checker the caller's role is the user's current one (from the same cached
 * read), whatever the token claims. No credential -> CREDENTIALS_MISSING.
 */
export function credentialAuthenticator(options: {
  verifier: TokenVerifier;
  resolveApiKey?: ApiKeyResolver;
  checkStatus?: StatusChecker;
}): (ctx: CallContext) => Promise<AuthContext> {
  const { verifier, resolveApiKey, checkStatus } = options;
  return async (ctx) => {
    const token = bearerToken(ctx);
    if (token === undefined) throw new UnauthenticatedError("missing credentials", { reason: ErrorReason.CREDENTIALS_MISSING });
    if (token.startsWith(API_KEY_PREFIX)) {
      if (!resolveApiKey) throw refusal(ErrorReason.CREDENTIALS_INVALID);
      const answer = await resolveApiKey(token, ctx.traceContext);
      if (!answer.active) throw refusal(answer.reason);
      return answer.auth;
    }
    const auth = await verifier.verify(token, ctx.traceContext);
    if (checkStatus && auth.userId !== undefined) {
      const status = await checkStatus(auth.tenantId, auth.userId, auth.credentialId ?? "");
      if (!status.ok) throw refusal(status.reason);
      // The verifier's answer is shared (frozen, cached per token): a changed role gets a copy.
      if (status.role !== auth.role) return { ...auth, role: status.role };
    }
    return auth;
  };
}
