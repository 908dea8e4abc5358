import { createHash, randomBytes } from "node:crypto";
import { appendEvents, withServiceRole, withTenant, type Knex } from "@promptcraft/db";
import { InvalidArgumentError, UnauthenticatedError, type Actor } from "@promptcraft/platform";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import * as store from "../store/invitations.js";
import { findTenant } from "../store/tenants.js";
import { findUser, type UserRow } from "../store/users.js";
import { checkPasswordPolicy, hashPassword } from "./passwords.js";
import { loggedIn, openSession, type ClientInfo, type LoggedIn, type SessionSettings } from "./sessions.js";

/**
 * Invitations: a user created without a password (CreateUser, or CreateTenant's first owner) gets a
 * one-time token, valid {@link INVITATION_TTL_MS}, returned once and stored as its SHA-256.
 * AcceptInvitation exchanges it for a password (and a session): single use, refused once expired,
 * used, replaced, or when the user is no longer invited.
 */

/** How long an invitation token is valid (the contract: 7 days). */
export const INVITATION_TTL_MS = 7 * 86_400_000;
/** Invitation tokens start with this, like `pck_` API keys and `pcr_` refresh tokens. */
export const INVITATION_TOKEN_PREFIX = "pci_";

export function hashInvitationToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/**
 * Issues an invitation for an invited user in the caller's transaction, closing any open one (a
 * user has one valid token at most), and appends `identity.user.invited`. Returns the token: the only time it exists
 * in clear.
 */
export async function issueInvitation(
  trx: Knex.Transaction,
  user: Pick<UserRow, "tenant_id" | "id" | "row_version">,
  actor: Actor,
  now = new Date(),
): Promise<{ token: string; expiresAt: Date }> {
  const token = `${INVITATION_TOKEN_PREFIX}${randomBytes(32).toString("base64url")}`;
  const expiresAt = new Date(now.getTime() + INVITATION_TTL_MS);
  const replaced = await store.revokeOpenInvitations(trx, user.tenant_id, user.id);
  const invitation = await store.insertInvitation(trx, {
    tenantId: user.tenant_id,
    userId: user.id,
    tokenHash: hashInvitationToken(token),
    createdBy: actor.actorType === "user" ? actor.actorId : null,
    expiresAt,
  });
  await appendEvents(trx, [
    {
      tenantId: user.tenant_id,
      aggregateType: "user",
      aggregateId: user.id,
      aggregateVersion: BigInt(user.row_version),
      eventType: "identity.user.invited",
      payload: { invitation_id: invitation.id, expire_time: expiresAt.toISOString(), replaced_open_invitation: replaced > 0 },
      ...actor,
    },
  ]);
  return { token, expiresAt };
}

const invitationInvalid = () =>
  new InvalidArgumentError(
    { field: "invitation_token", description: "the invitation is unknown, expired, already used or replaced" },
    { reason: ErrorReason.INVITATION_INVALID },
  );

export interface Acceptance {
  token: string;
  password: string;
  /** Empty keeps the name given at invitation. */
  displayName: string;
}

/**
 * Accepts an invitation: the invited user gets the password, becomes active, the invitation is
 * used up, `identity.user.invitation_accepted` is appended and the user's first session opened, in one
 * transaction. Every way a token can be wrong is one error (INVITATION_INVALID); a suspended
 * tenant is refused like a login (TENANT_SUSPENDED) without using the invitation up.
 */
export async function acceptInvitation(db: Knex, settings: SessionSettings, input: Acceptance, client: ClientInfo): Promise<LoggedIn> {
  const tokenHash = hashInvitationToken(input.token);
  const found = await withServiceRole(db, "identity", (trx) => store.findOpenInvitation(trx, tokenHash));
  if (!found) throw invitationInvalid();
  const scope = { service: "identity" as const, tenantId: found.tenant_id, userId: found.user_id };
  const invitee = await withTenant(db, scope, (trx) => findUser(trx, found.tenant_id, found.user_id));
  if (!invitee) throw invitationInvalid();
  checkPasswordPolicy(input.password, invitee.email, "password");
  // The slow hash runs outside the transaction: no row is locked meanwhile.
  const passwordHash = await hashPassword(input.password);
  const opened = await withTenant(db, scope, async (trx) => {
    const invitation = await store.lockInvitation(trx, found.tenant_id, found.id);
    if (!invitation || invitation.accepted_at || invitation.revoked_at || invitation.expires_at.getTime() <= Date.now()) throw invitationInvalid();
    const user = await findUser(trx, found.tenant_id, found.user_id, true);
    if (!user || user.status !== "invited" || user.deleted_at) throw invitationInvalid();
    const tenant = await findTenant(trx, found.tenant_id);
    if (tenant?.status !== "active") throw new UnauthenticatedError("tenant suspended", { reason: ErrorReason.TENANT_SUSPENDED });
    const rowVersion = await store.activateInvitedUser(trx, found.tenant_id, found.user_id, passwordHash, input.displayName || undefined);
    await store.markAccepted(trx, found.tenant_id, found.id);
    await appendEvents(trx, [
      {
        tenantId: found.tenant_id,
        aggregateType: "user",
        aggregateId: found.user_id,
        aggregateVersion: BigInt(rowVersion),
        eventType: "identity.user.invitation_accepted",
        payload: { invitation_id: found.id, ...(input.displayName ? { display_name: input.displayName } : {}) },
        actorType: "user",
        actorId: found.user_id,
        requestId: client.requestId,
      },
    ]);
    return openSession(trx, settings.lifetimes, { tenantId: found.tenant_id, userId: found.user_id, authMethod: "invitation" }, client);
  });
  return loggedIn(settings, opened);
}
