import { serviceConfig } from "@promptcraft/platform";
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
     * Bearer secret of the platform administrator (RotateSigningKey; later tenant creation), at
     * least 32 characters. Unset: no platform-admin call is possible.
     */
    PLATFORM_ADMIN_TOKEN: z.preprocess(
      emptyIsUnset,
      z
        .string()
        .regex(/^[A-Za-z0-9._~+/=-]{32,512}$/, { error: "must be 32 to 512 characters of [A-Za-z0-9._~+/=-] (openssl rand -base64 32)" })
        .optional(),
    ),
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
