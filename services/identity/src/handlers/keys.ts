import { requirePlatformAdmin, timestampFromDb, type ServiceDeps, type ServiceHandlers } from "@promptcraft/platform";
import type { AuthService } from "@promptcraft/proto/promptcraft/identity/v1/auth_service_pb";
import type { IdentityConfig } from "../config.js";
import type { KeyRing } from "../domain/signing-keys.js";

/** How long clients may cache the JWK Set (they refetch on an unknown `kid` anyway). */
export const JWKS_CACHE_CONTROL = "public, max-age=300";

/** AuthService: the JWK Set and signing-key rotation. */
export function keyHandlers(deps: ServiceDeps<IdentityConfig>, keys: KeyRing): ServiceHandlers<typeof AuthService> {
  return {
    getJwks: async (_request, ctx) => {
      ctx.setResponseHeader("cache-control", JWKS_CACHE_CONTROL);
      return { keys: await keys.publishedJwks() };
    },
    rotateSigningKey: async (_request, ctx) => {
      requirePlatformAdmin(ctx, deps.config.PLATFORM_ADMIN_TOKEN);
      const { jwk, activatedAt } = await keys.rotate();
      return { key: jwk, activateTime: timestampFromDb(activatedAt) };
    },
  };
}
