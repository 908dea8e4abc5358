import type { ServiceDeps, ServiceHandlers } from "@promptcraft/platform";
import type { IdentityService } from "@promptcraft/proto/promptcraft/identity/v1/identity_pb";
import type { IdentityConfig } from "../config.js";

/**
 * Handlers of `promptcraft.identity.v1.IdentityService`. None is built yet: every method answers
 * UNIMPLEMENTED (the platform does that for a method without a handler), never made-up data.
 */
export function identityHandlers(_deps: ServiceDeps<IdentityConfig>): ServiceHandlers<typeof IdentityService> {
  return {};
}
