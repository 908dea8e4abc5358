import type { ServiceDeps, ServiceHandlers } from "@promptcraft/platform";
import type { AuthService } from "@promptcraft/proto/promptcraft/identity/v1/auth_service_pb";
import type { IdentityConfig } from "../config.js";
import { acceptInvitation } from "../domain/invitations.js";
import type { KeyRing } from "../domain/signing-keys.js";
import { clientOf, sessionSettings, tokensToProto } from "./sessions.js";
import { userToProto } from "./users.js";

/**
 * AuthService.AcceptInvitation (public): the invitation token and a password make the invited user
 * active and start their first session, in one transaction (`domain/invitations.ts`).
 */
export function invitationHandlers(deps: ServiceDeps<IdentityConfig>, keys: KeyRing): ServiceHandlers<typeof AuthService> {
  const { db } = deps;
  const settings = sessionSettings(deps.config, keys);
  return {
    acceptInvitation: async (request, ctx) => {
      const { tokens, user } = await acceptInvitation(
        db,
        settings,
        { token: request.invitationToken, password: request.password, displayName: request.displayName },
        clientOf(ctx),
      );
      return { tokens: tokensToProto(tokens), user: userToProto({ user, purgeTime: undefined }) };
    },
  };
}
