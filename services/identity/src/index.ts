import type { ServiceModule } from "@promptcraft/platform";
import { IdentityConfig } from "./config.js";
import { resolveApiKey } from "./domain/api-keys.js";
import { startHousekeeping } from "./domain/housekeeping.js";
import { keyEncryptionKey } from "./domain/key-encryption.js";
import { KeyRing } from "./domain/signing-keys.js";
import { jwksRoute, routes } from "./routes.js";

/**
 * The identity service, as `startService` / `runService` take it. Before serving it makes sure an
 * access-token signing key exists; it verifies tokens against its own keys (no call to itself).
 */
export const identityService: ServiceModule<IdentityConfig, KeyRing> = {
  name: "identity",
  config: IdentityConfig,
  async setup({ config, db, log }) {
    const kek = keyEncryptionKey(config.IDENTITY_KEY_ENCRYPTION_KEY, config.NODE_ENV, log);
    const keys = new KeyRing(db, kek, log);
    await keys.ensureActive();
    const housekeeping = startHousekeeping(
      db,
      kek,
      { rotationDays: config.SIGNING_KEY_ROTATION_DAYS, throttleWindowS: config.LOGIN_THROTTLE_WINDOW_S },
      config.HOUSEKEEPING_INTERVAL_S * 1000,
      log,
    );
    return {
      state: keys,
      jwks: () => keys.publishedJwks(),
      resolveApiKey: (secret) => resolveApiKey(db, secret, log),
      httpRoutes: { "/.well-known/jwks.json": jwksRoute(keys) },
      close: () => housekeeping.stop(),
    };
  },
  routes,
};

export { IdentityConfig };
export { issueAccessToken, type AccessTokenSubject, type IssuedAccessToken } from "./domain/access-tokens.js";
export { KeyRing, generateSigningKey, PUBLISH_AFTER_RETIREMENT_S, SIGNER_CACHE_MS, type PublicJwk } from "./domain/signing-keys.js";
export { keyEncryptionKey, decryptPrivateKey } from "./domain/key-encryption.js";
export { sweep, HOUSEKEEPING_LOCK_KEY, RETENTION_MS, type SweepResult } from "./domain/housekeeping.js";
export { PUBLIC_AUTH_METHODS } from "./routes.js";
export * as signingKeyStore from "./store/signing-keys.js";
