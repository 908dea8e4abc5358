import { randomBytes } from "node:crypto";
import { SignJWT } from "jose";
import { ACCESS_TOKEN_ALGORITHM, ACCESS_TOKEN_AUDIENCE, ACCESS_TOKEN_TYPE, MAX_ACCESS_TOKEN_TTL_S, type AuthContext } from "@promptcraft/platform";
import type { KeyRing } from "./signing-keys.js";

/** Who an access token is for. */
export interface AccessTokenSubject {
  tenantId: string;
  userId: string;
  role: AuthContext["role"];
  /** The session (refresh-token family) the token belongs to: the `sid` claim. */
  sessionId: string;
}

export interface AccessTokenSettings {
  /** `iss` (config TOKEN_ISSUER). */
  issuer: string;
  /** Lifetime in seconds (config ACCESS_TOKEN_TTL_S), at most {@link MAX_ACCESS_TOKEN_TTL_S}. */
  ttlS: number;
}

/** An issued access token and when it expires. */
export interface IssuedAccessToken {
  token: string;
  expiresAt: Date;
  kid: string;
  jti: string;
}

/**
 * Issues an access token: a compact JWS signed with the active Ed25519 key (`alg: EdDSA`, `kid`,
 * `typ: at+jwt`), claims `iss`, `aud`, `sub` (user), `tid` (tenant), `role`, `sid` (session),
 * `jti` (random), `iat`, `nbf`, `exp`.
 */
export async function issueAccessToken(
  keys: KeyRing,
  settings: AccessTokenSettings,
  subject: AccessTokenSubject,
): Promise<IssuedAccessToken> {
  const ttl = Math.min(settings.ttlS, MAX_ACCESS_TOKEN_TTL_S);
  if (!(ttl > 0)) throw new Error("access-token lifetime must be positive");
  const key = await keys.signingKey();
  const now = Math.floor(Date.now() / 1000);
  const jti = randomBytes(16).toString("base64url");
  const token = await new SignJWT({ tid: subject.tenantId, role: subject.role, sid: subject.sessionId })
    .setProtectedHeader({ alg: ACCESS_TOKEN_ALGORITHM, kid: key.kid, typ: ACCESS_TOKEN_TYPE })
    .setIssuer(settings.issuer)
    .setAudience(ACCESS_TOKEN_AUDIENCE)
    .setSubject(subject.userId)
    .setJti(jti)
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(now + ttl)
    .sign(key.privateKey);
  return { token, expiresAt: new Date((now + ttl) * 1000), kid: key.kid, jti };
}
