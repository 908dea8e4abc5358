import { createHash, randomBytes } from "node:crypto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  AuthMethod,
  Role,
  SessionRevokeReason,
  UserState,
  type SessionSchema,
  type UserSchema,
} from "@promptcraft/proto/promptcraft/identity/v1/resources_pb";
import type { FamilyRow } from "../store/sessions.js";

/** Prefix of refresh tokens (recognisable in logs and secret scanners). */
export const REFRESH_TOKEN_PREFIX = "pcr_";

/** A new opaque refresh token: 32 random bytes, base64url, prefixed. */
export function newRefreshToken(): string {
  return REFRESH_TOKEN_PREFIX + randomBytes(32).toString("base64url");
}

/** How a refresh token is stored and looked up: SHA-256, hex (it is high-entropy, so a fast hash suffices). */
export function hashRefreshToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/** `session.revoked_reason` values. */
export const REVOKE_REASONS = {
  logout: SessionRevokeReason.LOGOUT,
  revoked: SessionRevokeReason.REVOKED,
  reuse_detected: SessionRevokeReason.REFRESH_TOKEN_REUSED,
  password_changed: SessionRevokeReason.PASSWORD_CHANGED,
  user_disabled: SessionRevokeReason.USER_DISABLED,
} as const;
export type RevokeReason = keyof typeof REVOKE_REASONS;

/** When a token issued at `now` expires: the idle timeout, capped by the session's absolute expiry. */
export function refreshTokenExpiry(now: Date, idleTtlS: number, absoluteExpiresAt: Date): Date {
  return new Date(Math.min(now.getTime() + idleTtlS * 1000, absoluteExpiresAt.getTime()));
}

/** A session family row as the contract's Session. */
export function sessionToProto(row: FamilyRow): MessageInitShape<typeof SessionSchema> {
  return {
    id: row.family_id,
    userId: row.user_id,
    authMethod: row.auth_method === "oidc" ? AuthMethod.OIDC : AuthMethod.PASSWORD,
    userAgent: row.user_agent ?? "",
    clientAddress: row.client_ip ?? "",
    createTime: timestampFromDate(new Date(row.started_at)),
    lastRefreshTime: timestampFromDate(new Date(row.created_at)),
    expireTime: timestampFromDate(new Date(row.absolute_expires_at)),
    revokeTime: row.revoked_at ? timestampFromDate(new Date(row.revoked_at)) : undefined,
    revokeReason: row.revoked_reason
      ? (REVOKE_REASONS[row.revoked_reason as RevokeReason] ?? SessionRevokeReason.REVOKED)
      : SessionRevokeReason.UNSPECIFIED,
  };
}

/** The `app_user` columns the login response shows. */
export interface LoginUserRow {
  tenant_id: string;
  id: string;
  email: string;
  display_name: string;
  role: "owner" | "admin" | "editor" | "viewer";
  status: "invited" | "active" | "deactivated";
  password_hash: string | null;
  created_at: Date;
  updated_at: Date;
  last_login_at: Date | null;
  row_version: string | number;
}

const ROLES = { owner: Role.OWNER, admin: Role.ADMIN, editor: Role.EDITOR, viewer: Role.VIEWER } as const;
const STATES = { active: UserState.ACTIVE, invited: UserState.INVITED, deactivated: UserState.DEACTIVATED } as const;

/** The logged-in user as the contract's User (never the password hash). */
export function loginUserToProto(row: LoginUserRow): MessageInitShape<typeof UserSchema> {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    email: row.email,
    displayName: row.display_name,
    role: ROLES[row.role],
    state: STATES[row.status],
    hasPassword: row.password_hash !== null,
    createTime: timestampFromDate(new Date(row.created_at)),
    updateTime: timestampFromDate(new Date(row.updated_at)),
    lastLoginTime: row.last_login_at ? timestampFromDate(new Date(row.last_login_at)) : undefined,
    etag: `"${String(row.row_version)}"`,
  };
}
