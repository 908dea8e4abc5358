import type { ServiceDeps, ServiceHandlers } from "@promptcraft/platform";
import type { AuthService } from "@promptcraft/proto/promptcraft/identity/v1/auth_service_pb";
import type { IdentityService } from "@promptcraft/proto/promptcraft/identity/v1/identity_service_pb";
import type { IdentityConfig } from "../config.js";
import type { OidcClient } from "../domain/oidc-client.js";
import type { KeyRing } from "../domain/signing-keys.js";
import { apiKeyHandlers } from "./api-keys.js";
import { introspectHandlers } from "./introspect.js";
import type { LocalCredentials } from "./local-credentials.js";
import { invitationHandlers } from "./invitations.js";
import { keyHandlers } from "./keys.js";
import { oidcAuthHandlers, oidcIdentityHandlers } from "./oidc.js";
import { sessionHandlers } from "./sessions.js";
import { tenantHandlers } from "./tenants.js";
import { userHandlers } from "./users.js";

export { JWKS_CACHE_CONTROL } from "./keys.js";
export { localCredentials, type LocalCredentials } from "./local-credentials.js";

/**
 * Handlers of `promptcraft.identity.v1.IdentityService`, one file per area. A method no area
 * implements yet answers UNIMPLEMENTED (the platform does that), never made-up data.
 */
export function identityHandlers(
  deps: ServiceDeps<IdentityConfig>,
  keys: KeyRing,
  oidc: OidcClient,
  credentials: LocalCredentials,
): ServiceHandlers<typeof IdentityService> {
  return { ...tenantHandlers(deps, credentials.authenticate), ...userHandlers(deps), ...apiKeyHandlers(deps), ...oidcIdentityHandlers(deps, keys, oidc) };
}

/** Handlers of `promptcraft.identity.v1.AuthService`, one file per area. */
export function authHandlers(deps: ServiceDeps<IdentityConfig>, keys: KeyRing, oidc: OidcClient, credentials: LocalCredentials): ServiceHandlers<typeof AuthService> {
  return {
    ...invitationHandlers(deps, keys),
    ...keyHandlers(deps, keys),
    ...sessionHandlers(deps, keys, credentials),
    ...introspectHandlers(deps, credentials),
    ...oidcAuthHandlers(deps, keys, oidc),
  };
}
