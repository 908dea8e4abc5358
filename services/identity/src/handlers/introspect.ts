import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import {
  API_KEY_PREFIX,
  AppError,
  callerOf,
  CREDENTIAL_CACHE_TTL_MS,
  databaseStatusChecker,
  timestampFromDb,
  type ServiceDeps,
  type ServiceHandlers,
} from "@promptcraft/platform";
import { IntrospectCredentialResponseSchema, type AuthService } from "@promptcraft/proto/promptcraft/identity/v1/auth_service_pb";
import { CredentialType, PrincipalSchema } from "@promptcraft/proto/promptcraft/identity/v1/resources_pb";
import type { IdentityConfig } from "../config.js";
import { resolveApiKey } from "../domain/api-keys.js";
import type { LocalCredentials } from "./local-credentials.js";
import { ROLE_TO_PROTO } from "./roles.js";


/**
 * AuthService.IntrospectCredential: resolves an API key or an access token to its principal,
 * fresh from the store (no cache here; callers cache for `cache_ttl`). Any authenticated caller,
 * for credentials of its own tenant only: a credential of another tenant, or an inactive one, is
 * reported as `active: false` with no principal. Services resolve a presented API key by calling
 * this with the key itself as their bearer (see `remoteApiKeyResolver` in the platform).
 */
export function introspectHandlers(deps: ServiceDeps<IdentityConfig>, { verifier }: LocalCredentials): ServiceHandlers<typeof AuthService> {
  const checkStatus = databaseStatusChecker(deps.db, "identity");
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
            expireTime: answer.expiresAt === undefined ? undefined : timestampFromDb(answer.expiresAt),
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
