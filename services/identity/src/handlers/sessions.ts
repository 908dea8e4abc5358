import type { ServiceDeps, ServiceHandlers } from "@promptcraft/platform";
import type { AuthService } from "@promptcraft/proto/promptcraft/identity/v1/auth_service_pb";
import type { IdentityConfig } from "../config.js";
import type { KeyRing } from "../domain/signing-keys.js";

/**
 * AuthService: password login, refresh, logout, sessions and passwords (Login, AcceptInvitation, RefreshToken, Logout, ListSessions, RevokeSession, ChangePassword, ResetPassword, GetLoginOptions).
 * Not built yet: these methods answer UNIMPLEMENTED.
 */
export function sessionHandlers(_deps: ServiceDeps<IdentityConfig>, _keys: KeyRing): ServiceHandlers<typeof AuthService> {
  return {};
}
