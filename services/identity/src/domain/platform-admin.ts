import { bearerToken, PermissionDeniedError, secretEquals, UnauthenticatedError, type CallContext } from "@promptcraft/platform";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";

/**
 * The platform administrator, until platform-admin accounts exist: whoever presents
 * `authorization: Bearer <PLATFORM_ADMIN_TOKEN>`. Compared in constant time (as SHA-256 digests,
 * so the lengths never differ). With no PLATFORM_ADMIN_TOKEN configured, nobody is.
 *
 * Methods that call this are marked public in `serve()`: the platform's access-token check is
 * skipped, this check takes its place.
 */
export function requirePlatformAdmin(ctx: Pick<CallContext, "header">, adminToken: string | undefined): void {
  if (bearerToken(ctx) === undefined) {
    throw new UnauthenticatedError("missing credentials", { reason: ErrorReason.CREDENTIALS_MISSING });
  }
  if (!isPlatformAdmin(ctx, adminToken)) throw new PermissionDeniedError("platform administrator required", { reason: ErrorReason.PLATFORM_ADMIN_REQUIRED });
}

/**
 * Whether the caller presents the platform-admin credential, for methods that serve the platform
 * admin and tenant members alike (GetTenant, UpdateTenant); anything else is a member's credential
 * to authenticate as usual.
 */
export function isPlatformAdmin(ctx: Pick<CallContext, "header">, adminToken: string | undefined): boolean {
  const presented = bearerToken(ctx);
  if (presented === undefined || adminToken === undefined) return false;
  return secretEquals(presented, adminToken);
}
