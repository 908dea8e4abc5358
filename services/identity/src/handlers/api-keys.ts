import type { ServiceDeps, ServiceHandlers } from "@promptcraft/platform";
import type { IdentityService } from "@promptcraft/proto/promptcraft/identity/v1/identity_service_pb";
import type { IdentityConfig } from "../config.js";

/**
 * IdentityService: API keys (CreateApiKey, GetApiKey, ListApiKeys, RevokeApiKey).
 * Not built yet: these methods answer UNIMPLEMENTED.
 */
export function apiKeyHandlers(_deps: ServiceDeps<IdentityConfig>): ServiceHandlers<typeof IdentityService> {
  return {};
}
