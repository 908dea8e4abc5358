import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { callerOf, CREDENTIAL_CACHE_TTL_MS, databaseStatusChecker, timestampFromDb, type ServiceDeps, type ServiceHandlers } from "@promptcraft/platform";
import { IntrospectCredentialResponseSchema, type AuthService } from "@promptcraft/proto/promptcraft/identity/v1/auth_service_pb";
import { CredentialType, PrincipalSchema, type Principal } from "@promptcraft/proto/promptcraft/identity/v1/resources_pb";
import type { IdentityConfig } from "../config.js";
import { introspectCredential, type Principal as DomainPrincipal } from "../domain/introspection.js";
import type { LocalCredentials } from "./local-credentials.js";
import { ROLE_TO_PROTO } from "./roles.js";

/** A principal as the contract's Principal. */
function principalToProto(p: DomainPrincipal): Principal {
  return p.kind === "api_key"
    ? create(PrincipalSchema, {
        credentialType: CredentialType.API_KEY,
        tenantId: p.tenantId,
        role: ROLE_TO_PROTO[p.role],
        apiKeyId: p.apiKeyId,
        expireTime: p.expiresAt === undefined ? undefined : timestampFromDb(p.expiresAt),
      })
    : create(PrincipalSchema, {
        credentialType: CredentialType.ACCESS_TOKEN,
        tenantId: p.tenantId,
        userId: p.userId,
        role: ROLE_TO_PROTO[p.role],
        sessionId: p.sessionId,
      });
}

/**
 * AuthService.IntrospectCredential (domain/introspection.ts): any authenticated caller, for
 * credentials of its own tenant. Services resolve a presented API key by calling this with the key
 * itself as their bearer (see `remoteApiKeyResolver` in the platform).
 */
export function introspectHandlers(deps: ServiceDeps<IdentityConfig>, { verifier }: LocalCredentials): ServiceHandlers<typeof AuthService> {
  const checks = { verifier, checkStatus: databaseStatusChecker(deps.db, "identity"), log: deps.log };
  return {
    introspectCredential: async (request, ctx) => {
      const principal = await introspectCredential(deps.db, checks, callerOf(ctx), request.credential);
      return create(IntrospectCredentialResponseSchema, {
        active: principal !== undefined,
        principal: principal && principalToProto(principal),
        cacheTtl: durationFromMs(CREDENTIAL_CACHE_TTL_MS),
      });
    },
  };
}
