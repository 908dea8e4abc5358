import { platformAdminTokenField, serviceConfig } from "@promptcraft/platform";
import { z } from "zod";

const BASE64_32_BYTES = /^[A-Za-z0-9+/]{43}=$/;

/** An empty variable (`FOO=`, or `${FOO:-}` in compose) means unset. */
const emptyIsUnset = (value: unknown) => (value === "" ? undefined : value);

/** The identity service's configuration (environment variables), parsed once at start. */
export const IdentityConfig = serviceConfig(
  { grpcPort: 50051, connectPort: 51051 },
  {
    /**
     * Key-encryption key of the signing keys' private halves (AES-256-GCM at rest): 32 random
     * bytes, base64 (`openssl rand -base64 32`). Required when NODE_ENV=production; elsewhere a
     * well-known development key is used, with a warning in the log.
     */
    IDENTITY_KEY_ENCRYPTION_KEY: z.preprocess(
      emptyIsUnset,
      z.string().regex(BASE64_32_BYTES, { error: "must be 32 bytes, base64 (openssl rand -base64 32)" }).optional(),
    ),
    /** Lifetime of access tokens, in seconds: 60 to 900 (15 minutes). */
    ACCESS_TOKEN_TTL_S: z.coerce.number().int().min(60).max(900).default(900),
    /**
     * Bearer secret of the platform administrator (tenants, RotateSigningKey), at least 32
     * characters; analytics takes the same secret. Unset: no platform-admin call is possible.
     */
    PLATFORM_ADMIN_TOKEN: platformAdminTokenField,
    /** Absolute session lifetime in seconds (however often it is refreshed): 1 hour to 365 days; default 30 days. */
    SESSION_MAX_LIFETIME_S: z.coerce.number().int().min(3600).max(31_536_000).default(2_592_000),
    /** A refresh token unused for this long (seconds) expires: 5 minutes to 90 days; default 14 days. */
    REFRESH_TOKEN_IDLE_TTL_S: z.coerce.number().int().min(300).max(7_776_000).default(1_209_600),
    /** Failed logins per account (tenant + email) allowed within the window before attempts are slowed, then refused. */
    LOGIN_THROTTLE_ACCOUNT_FAILURES: z.coerce.number().int().min(1).max(10_000).default(5),
    /** Failed logins per client address (IPv6: /64), across tenants, allowed within the window before throttling. */
    LOGIN_THROTTLE_ADDRESS_FAILURES: z.coerce.number().int().min(1).max(100_000).default(100),
    /** First block after the allowance, in seconds; doubles with every further failure. */
    LOGIN_THROTTLE_BASE_DELAY_S: z.coerce.number().int().min(1).max(3600).default(2),
    /** Longest block, in seconds. */
    LOGIN_THROTTLE_MAX_DELAY_S: z.coerce.number().int().min(1).max(86_400).default(900),
    /** Failures older than this many seconds are forgotten (the counter starts again). */
    LOGIN_THROTTLE_WINDOW_S: z.coerce.number().int().min(60).max(86_400).default(900),
    /** Scheduled signing-key rotation: a key signs for this many days, then housekeeping rotates it; 0 = never (RotateSigningKey only). */
    SIGNING_KEY_ROTATION_DAYS: z.coerce.number().int().min(0).max(365).default(30),
    /** Seconds between housekeeping sweeps (one replica at a time): 60 to 86400; default 1 hour. */
    HOUSEKEEPING_INTERVAL_S: z.coerce.number().int().min(60).max(86_400).default(3600),
    /** `production` makes IDENTITY_KEY_ENCRYPTION_KEY mandatory. */
    NODE_ENV: z.string().optional(),
  },
).superRefine((config, ctx) => {
  if (config.NODE_ENV === "production" && config.IDENTITY_KEY_ENCRYPTION_KEY === undefined) {
    ctx.addIssue({
      code: "custom",
      path: ["IDENTITY_KEY_ENCRYPTION_KEY"],
      message: "required when NODE_ENV=production (32 bytes, base64)",
    });
  }
});
export type IdentityConfig = z.infer<typeof IdentityConfig>;
