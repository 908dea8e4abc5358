import type { Knex } from "@promptcraft/db";

/**
 * SQL of `invitation`. The lookup by token hash runs before the tenant is known
 * (`auth_find_invitation`, in `withServiceRole`); everything else inside `withTenant`.
 */

/** An invitation row (never its token, which only the invitee holds). */
export interface InvitationRow {
  tenant_id: string;
  id: string;
  user_id: string;
  created_at: Date;
  expires_at: Date;
  accepted_at: Date | null;
  revoked_at: Date | null;
}

const COLUMNS = "tenant_id, id, user_id, created_at, expires_at, accepted_at, revoked_at";

/** `auth_find_invitation(hash)`: the open, unexpired invitation of a token, and its tenant. */
export async function findOpenInvitation(trx: Knex.Transaction, tokenHash: string): Promise<{ tenant_id: string; id: string; user_id: string } | undefined> {
  const { rows } = await trx.raw<{ rows: { tenant_id: string; id: string; user_id: string }[] }>(
    "select tenant_id, id, user_id from auth_find_invitation(?)",
    [tokenHash],
  );
  return rows[0];
}

/** Closes the user's open invitation, if any (a new one replaces it); the number closed. */
export async function revokeOpenInvitations(trx: Knex.Transaction, tenantId: string, userId: string): Promise<number> {
  const { rowCount } = await trx.raw<{ rowCount: number }>(
    "update invitation set revoked_at = now() where tenant_id = ? and user_id = ? and accepted_at is null and revoked_at is null",
    [tenantId, userId],
  );
  return rowCount;
}

export async function insertInvitation(
  trx: Knex.Transaction,
  i: { tenantId: string; userId: string; tokenHash: string; createdBy: string | null; expiresAt: Date },
): Promise<InvitationRow> {
  const { rows } = await trx.raw<{ rows: InvitationRow[] }>(
    `insert into invitation (tenant_id, user_id, token_hash, created_by, expires_at) values (?, ?, ?, ?, ?) returning ${COLUMNS}`,
    [i.tenantId, i.userId, i.tokenHash, i.createdBy, i.expiresAt],
  );
  return rows[0]!;
}

/** The invitation, locked: two acceptances of one token are serialised and the second finds it closed. */
export async function lockInvitation(trx: Knex.Transaction, tenantId: string, id: string): Promise<InvitationRow | undefined> {
  const { rows } = await trx.raw<{ rows: InvitationRow[] }>(`select ${COLUMNS} from invitation where tenant_id = ? and id = ? for update`, [tenantId, id]);
  return rows[0];
}

export async function markAccepted(trx: Knex.Transaction, tenantId: string, id: string): Promise<void> {
  await trx.raw("update invitation set accepted_at = now() where tenant_id = ? and id = ?", [tenantId, id]);
}

/** An invited user becomes active with a password (and optionally a new display name); the new row version. */
export async function activateInvitedUser(
  trx: Knex.Transaction,
  tenantId: string,
  userId: string,
  passwordHash: string,
  displayName: string | undefined,
): Promise<string> {
  const { rows } = await trx.raw<{ rows: { row_version: string }[] }>(
    `update app_user set status = 'active', password_hash = ?, password_changed_at = now(),
       display_name = coalesce(?, display_name), updated_at = now(), row_version = row_version + 1
     where tenant_id = ? and id = ? returning row_version::text as row_version`,
    [passwordHash, displayName ?? null, tenantId, userId],
  );
  return rows[0]!.row_version;
}
