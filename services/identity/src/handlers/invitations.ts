import type { ServiceDeps, ServiceHandlers } from "@promptcraft/platform";
import type { AuthService } from "@promptcraft/proto/promptcraft/identity/v1/auth_service_pb";
import type { IdentityConfig } from "../config.js";
import { acceptInvitation } from "../domain/invitations.js";
import { peerHost } from "../domain/login-throttle.js";
import { openSession, sessionTokens } from "../domain/sessions.js";
import type { KeyRing } from "../domain/signing-keys.js";
import { sessionLifetimes, userAgentOf } from "./sessions.js";
import { userToProto } from "./users.js";

/**
 * AuthService.AcceptInvitation (public): the invitation token and a password make the invited user
 * active and start their first session, in one transaction (`domain/invitations.ts`).
 */
export function invitationHandlers(deps: ServiceDeps<IdentityConfig>, keys: KeyRing): ServiceHandlers<typeof AuthService> {
  const { db, config } = deps;
  const lifetimes = sessionLifetimes(config);
  const tokenSettings = { issuer: config.TOKEN_ISSUER, ttlS: config.ACCESS_TOKEN_TTL_S };
  return {
    acceptInvitation: async (request, ctx) => {
      const { user, result: opened } = await acceptInvitation(
        db,
        { token: request.invitationToken, password: request.password, displayName: request.displayName, requestId: ctx.requestId },
        (trx, invitee) =>
          openSession(trx, lifetimes, {
            tenantId: invitee.tenant_id,
            userId: invitee.id,
            authMethod: "invitation",
            userAgent: userAgentOf(ctx),
            clientAddress: peerHost(ctx.peer) ?? null,
            requestId: ctx.requestId,
          }),
      );
      return {
        tokens: await sessionTokens(keys, tokenSettings, { tenantId: user.tenant_id, userId: user.id, role: opened.user.role, ...opened }),
        user: userToProto({ user: opened.user, purgeTime: undefined }),
      };
    },
  };
}
