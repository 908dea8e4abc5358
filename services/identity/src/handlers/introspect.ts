import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  API_KEY_PREFIX,
  AppError,
  cachedApiKeyResolver,
  cachedStatusChecker,
  callerOf,
  CREDENTIAL_CACHE_TTL_MS,
  credentialAuthenticator,
  databaseStatusChecker,
  TokenVerifier,
  type AuthContext,
  type CallContext,
  type ServiceDeps,
  type ServiceHandlers,
} from "@promptcraft/platform";
import { IntrospectCredentialResponseSchema, type AuthService } from "@promptcraft/proto/promptcraft/identity/v1/auth_service_pb";
import { CredentialType, PrincipalSchema, Role } from "@promptcraft/proto/promptcraft/identity/v1/resources_pb";
import type { IdentityConfig } from "../config.js";
import { resolveApiKey } from "../domain/api-keys.js";
import type { KeyRing } from "../domain/signing-keys.js";

const ROLE_TO_PROTO = { owner: Role.OWNER, admin: Role.ADMIN, editor: Role.EDITOR, viewer: Role.VIEWER } as const;

/**
 * Identity's own authentication of a caller, for methods that are public in `serve()` only because
 * they also take the platform-admin credential (GetTenant, UpdateTenant): the checks of every
 * service's interceptor (access token against identity's key store, or API key; tenant, user and
 * session status), with the same 5 s caches.
 */
export function localAuthenticator(deps: ServiceDeps<IdentityConfig>, keys: KeyRing): (ctx: CallContext) => Promise<AuthContext> {
  return credentialAuthenticator({
    verifier: new TokenVerifier({ fetchJwks: () => keys.publishedJwks(), issuer: deps.config.TOKEN_ISSUER, log: deps.log, cacheTtlMs: 60_000 }),
    resolveApiKey: cachedApiKeyResolver((secret) => resolveApiKey(deps.db, secret, deps.log)),
    checkStatus: cachedStatusChecker(databaseStatusChecker(deps.db, "identity", deps.log)),
  });
}

/**
 * AuthService.IntrospectCredential: resolves an API key or an access token to its principal,
 * fresh from the store (no cache here; callers cache for `cache_ttl`). Any authenticated caller,
 * for credentials of its own tenant only: a credential of another tenant, or an inactive one, is
 * reported as `active: false` with no principal. Services resolve a presented API key by calling
 * this with the key itself as their bearer (see `remoteApiKeyResolver` in the platform).
 */
export function introspectHandlers(deps: ServiceDeps<IdentityConfig>, keys: KeyRing): ServiceHandlers<typeof AuthService> {
  const verifier = new TokenVerifier({ fetchJwks: () => keys.publishedJwks(), issuer: deps.config.TOKEN_ISSUER, log: deps.log, cacheTtlMs: 60_000 });
  const checkStatus = databaseStatusChecker(deps.db, "identity", deps.log);
  const inactive = () => create(IntrospectCredentialResponseSchema, { active: false, cacheTtl: durationFromMs(CREDENTIAL_CACHE_TTL_MS) });
  return {
    introspectCredential: async (request, ctx) => {
      const caller = callerOf(ctx);
      const credential = request.credential;
      if (credential.startsWith(API_KEY_PREFIX)) {
        const answer = await resolveApiKey(deps.db, credential, deps.log);
        if (!answer.active || answer.auth.tenantId !== caller.tenantId) return inactive();
        return create(IntrospectCredentialResponseSchema, {
          active: true,
          principal: create(PrincipalSchema, {
            credentialType: CredentialType.API_KEY,
            tenantId: answer.auth.tenantId,
            role: ROLE_TO_PROTO[answer.auth.role],
            apiKeyId: answer.auth.credentialId ?? "",
            expireTime: answer.expiresAt === undefined ? undefined : timestampFromMs(answer.expiresAt),
          }),
          cacheTtl: durationFromMs(CREDENTIAL_CACHE_TTL_MS),
        });
      }
      let auth;
      try {
        auth = await verifier.verify(credential);
      } catch (err) {
        if (err instanceof AppError) return inactive();
        throw err;
      }
      if (auth.tenantId !== caller.tenantId || auth.userId === undefined) return inactive();
      const status = await checkStatus(auth.tenantId, auth.userId, auth.credentialId ?? "");
      if (!status.ok) return inactive();
      return create(IntrospectCredentialResponseSchema, {
        active: true,
        principal: create(PrincipalSchema, {
          credentialType: CredentialType.ACCESS_TOKEN,
          tenantId: auth.tenantId,
          userId: auth.userId,
          role: ROLE_TO_PROTO[auth.role],
          sessionId: auth.credentialId ?? "",
        }),
        cacheTtl: durationFromMs(CREDENTIAL_CACHE_TTL_MS),
      });
    },
  };
}
