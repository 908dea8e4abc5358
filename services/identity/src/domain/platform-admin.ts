import { createHash, timingSafeEqual } from "node:crypto";
import { bearerToken, PermissionDeniedError, UnauthenticatedError, type CallContext } from "@promptcraft/platform";
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
  const presented = bearerToken(ctx);
  if (presented === undefined) {
    throw new UnauthenticatedError("missing credentials", { reason: ErrorReason.CREDENTIALS_MISSING });
  }
  const digest = (value: string) => createHash("sha256").update(value, "utf8").digest();
  const ok = adminToken !== undefined && timingSafeEqual(digest(presented), digest(adminToken));
  if (!ok) throw new PermissionDeniedError("platform administrator required", { reason: ErrorReason.PLATFORM_ADMIN_REQUIRED });
}
