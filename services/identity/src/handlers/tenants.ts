import type { ServiceDeps, ServiceHandlers } from "@promptcraft/platform";
import type { IdentityService } from "@promptcraft/proto/promptcraft/identity/v1/identity_service_pb";
import type { IdentityConfig } from "../config.js";

/**
 * IdentityService: tenants (CreateTenant, GetTenant, ListTenants, UpdateTenant, SuspendTenant, ResumeTenant).
 * Not built yet: these methods answer UNIMPLEMENTED.
 */
export function tenantHandlers(_deps: ServiceDeps<IdentityConfig>): ServiceHandlers<typeof IdentityService> {
  return {};
}
