import type { ServiceDeps, ServiceHandlers } from "@promptcraft/platform";
import type { IdentityService } from "@promptcraft/proto/promptcraft/identity/v1/identity_service_pb";
import type { IdentityConfig } from "../config.js";

/**
 * IdentityService: users (CreateUser, GetUser, ListUsers, UpdateUser, DeactivateUser, ReactivateUser, DeleteUser, UndeleteUser).
 * Not built yet: these methods answer UNIMPLEMENTED.
 */
export function userHandlers(_deps: ServiceDeps<IdentityConfig>): ServiceHandlers<typeof IdentityService> {
  return {};
}
