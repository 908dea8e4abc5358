import {
  accessTokenAuthenticator,
  cachedApiKeyResolver,
  cachedStatusChecker,
  credentialAuthenticator,
  databaseStatusChecker,
  FailedPreconditionError,
  TokenVerifier,
  type AuthContext,
  type CallContext,
  type ServiceDeps,
} from "@promptcraft/platform";
import type { IdentityConfig } from "../config.js";
import { resolveApiKey } from "../domain/api-keys.js";
import type { TokenSession } from "../domain/sessions.js";
import type { KeyRing } from "../domain/signing-keys.js";

/**
 * Identity's own checks of a bearer credential, for the methods `serve()` leaves public because
 * they accept something besides a member's credential (the platform-admin secret, a refresh
 * token), and for IntrospectCredential. One TokenVerifier over identity's own key ring (no JWKS
 * round trip) serves them all. Two strengths, because the callers need different things:
 */
export interface LocalCredentials {
  /** Verifies access tokens against identity's published keys (signature, issuer, audience, expiry). */
  readonly verifier: TokenVerifier;
  /**
   * A member's credential, checked exactly as every service's interceptor checks it (platform
   * `credentialAuthenticator`): an access token whose tenant, user and session are still active,
   * or an API key; the same 5 s caches. GetTenant and UpdateTenant.
   */
  readonly authenticate: (ctx: CallContext) => Promise<AuthContext>;
  /**
   * The session an access token names, for Logout: the token must be genuine and unexpired, but the
   * session's status is deliberately not checked. Logout ends that session, so a session that has
   * already ended is the idempotent no-op it promises (the status check would answer
   * CREDENTIALS_REVOKED once its cache entry lapsed), and a user of a suspended tenant may still end
   * theirs; ending a session grants nothing. UNAUTHENTICATED without a valid access token,
   * FAILED_PRECONDITION for a credential without a session (an API key cannot get here: it is no token).
   */
  readonly tokenSession: (ctx: CallContext) => Promise<TokenSession>;
}

export function localCredentials(deps: ServiceDeps<IdentityConfig>, keys: KeyRing): LocalCredentials {
  const verifier = new TokenVerifier({ fetchJwks: () => keys.publishedJwks(), issuer: deps.config.TOKEN_ISSUER, log: deps.log, cacheTtlMs: 60_000 });
  const authenticate = credentialAuthenticator({
    verifier,
    resolveApiKey: cachedApiKeyResolver((secret) => resolveApiKey(deps.db, secret, deps.log)),
    checkStatus: cachedStatusChecker(databaseStatusChecker(deps.db, "identity")),
  });
  const verifyAccessToken = accessTokenAuthenticator(verifier);
  return {
    verifier,
    authenticate,
    tokenSession: async (ctx) => {
      const auth = await verifyAccessToken(ctx);
      if (auth.kind !== "access_token" || !auth.userId || !auth.credentialId) {
        throw new FailedPreconditionError("no session to end: log out with a refresh token or a user's access token");
      }
      return { tenantId: auth.tenantId, userId: auth.userId, sessionId: auth.credentialId };
    },
  };
}
