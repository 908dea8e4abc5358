import type { ServiceDeps, ServiceHandlers } from "@promptcraft/platform";
import type { AuthService } from "@promptcraft/proto/promptcraft/identity/v1/auth_service_pb";
import type { IdentityService } from "@promptcraft/proto/promptcraft/identity/v1/identity_service_pb";
import type { IdentityConfig } from "../config.js";

/**
 * Handlers of `promptcraft.identity.v1.IdentityService` (tenants, users, API keys). None is built
 * yet: every method answers UNIMPLEMENTED (the platform does that for a method without a
 * handler), never made-up data.
 */
export function identityHandlers(_deps: ServiceDeps<IdentityConfig>): ServiceHandlers<typeof IdentityService> {
  return {};
}

/** Handlers of `promptcraft.identity.v1.AuthService` (login, tokens, sessions, JWKS); none yet. */
export function authHandlers(_deps: ServiceDeps<IdentityConfig>): ServiceHandlers<typeof AuthService> {
  return {};
}
