import { serve, type ServiceDeps, type ServiceRegistration } from "@promptcraft/platform";
import { AuthService } from "@promptcraft/proto/promptcraft/identity/v1/auth_service_pb";
import { IdentityService } from "@promptcraft/proto/promptcraft/identity/v1/identity_service_pb";
import type { IdentityConfig } from "./config.js";
import { authHandlers, identityHandlers } from "./handlers/index.js";

/** The RPC services this process serves (health and reflection are added by the platform). */
export function routes(deps: ServiceDeps<IdentityConfig>): ServiceRegistration[] {
  return [serve(IdentityService, identityHandlers(deps)), serve(AuthService, authHandlers(deps))];
}
