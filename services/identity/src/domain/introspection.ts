import type { Knex } from "@promptcraft/db";
import { API_KEY_PREFIX, AppError, type AuthContext, type Logger, type Role, type StatusChecker, type TokenVerifier } from "@promptcraft/platform";
import { resolveApiKey } from "./api-keys.js";

/** Who an active credential is. */
export type Principal =
  | { kind: "api_key"; tenantId: string; role: Role; apiKeyId: string; expiresAt: Date | undefined }
  | { kind: "access_token"; tenantId: string; userId: string; role: Role; sessionId: string };

/**
 * IntrospectCredential: an API key or an access token resolved to its principal, fresh from the
 * store (no cache here; callers cache). Only credentials of the caller's own tenant: one of another
 * tenant, or an inactive one (revoked, expired, suspended tenant, ended session), is `undefined`,
 * which the contract reports as `active: false` without saying why.
 */
export async function introspectCredential(
  db: Knex,
  checks: { verifier: TokenVerifier; checkStatus: StatusChecker; log?: Logger },
  caller: AuthContext,
  credential: string,
): Promise<Principal | undefined> {
  if (credential.startsWith(API_KEY_PREFIX)) {
    const answer = await resolveApiKey(db, credential, checks.log);
    if (!answer.active || answer.auth.tenantId !== caller.tenantId) return undefined;
    return { kind: "api_key", tenantId: answer.auth.tenantId, role: answer.auth.role, apiKeyId: answer.auth.credentialId ?? "", expiresAt: answer.expiresAt };
  }
  let auth: AuthContext;
  try {
    auth = await checks.verifier.verify(credential);
  } catch (err) {
    if (err instanceof AppError) return undefined;
    throw err;
  }
  if (auth.tenantId !== caller.tenantId || auth.userId === undefined) return undefined;
  const status = await checks.checkStatus(auth.tenantId, auth.userId, auth.credentialId ?? "");
  if (!status.ok) return undefined;
  // The user's current role, as every service's interceptor takes it, not the token's claim.
  return { kind: "access_token", tenantId: auth.tenantId, userId: auth.userId, role: status.role, sessionId: auth.credentialId ?? "" };
}
