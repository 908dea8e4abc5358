import { z } from "zod";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import { bearerToken } from "./auth.js";
import type { CallContext } from "./context.js";
import { unsetIfEmpty } from "./config.js";
import { PermissionDeniedError, UnauthenticatedError } from "./errors.js";
import { secretEquals } from "./service-credential.js";

/**
 * The platform administrator, until platform-admin accounts exist: whoever presents
 * `authorization: Bearer <PLATFORM_ADMIN_TOKEN>`. One rule for every service that has
 * platform-admin methods (identity's tenants and signing keys, analytics' read models and
 * partitions), so the secret's format and its check cannot drift apart.
 *
 * Methods that call these checks are marked public in `serve()`: the platform's access-token check
 * is skipped (it would refuse this secret), this check takes its place.
 */

/**
 * The `PLATFORM_ADMIN_TOKEN` config field: at least 32 characters; an empty variable (`FOO=`, or
 * `${FOO:-}` in compose) means unset, and unset means no platform-admin call is possible.
 */
export const platformAdminTokenField = unsetIfEmpty(
  z
    .string()
    .regex(/^[A-Za-z0-9._~+/=-]{32,512}$/, { error: "must be 32 to 512 characters of [A-Za-z0-9._~+/=-] (openssl rand -base64 32)" })
    .optional(),
);

/** Refuses anyone but the platform admin: UNAUTHENTICATED without credentials, PERMISSION_DENIED with others. */
export function requirePlatformAdmin(ctx: Pick<CallContext, "header">, adminToken: string | undefined): void {
  if (bearerToken(ctx) === undefined) {
    throw new UnauthenticatedError("missing credentials", { reason: ErrorReason.CREDENTIALS_MISSING });
  }
  if (!isPlatformAdmin(ctx, adminToken)) throw new PermissionDeniedError("platform administrator required", { reason: ErrorReason.PLATFORM_ADMIN_REQUIRED });
}

/**
 * Whether the caller presents the platform-admin credential, for methods that serve the platform
 * admin and tenant members alike (identity's GetTenant, UpdateTenant). Compared in constant time
 * (`secretEquals`, as the service credential). With no token configured, nobody is.
 */
export function isPlatformAdmin(ctx: Pick<CallContext, "header">, adminToken: string | undefined): boolean {
  const presented = bearerToken(ctx);
  if (presented === undefined || adminToken === undefined) return false;
  return secretEquals(presented, adminToken);
}
