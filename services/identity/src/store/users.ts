import type { Knex } from "@promptcraft/db";

/**
 * SQL of `app_user` (and the session / API-key revocations a user's deactivation or deletion
 * implies), always inside `withTenant` for the user's tenant: row-level security hides every
 * other tenant's users.
 */

export type UserRole = "owner" | "admin" | "editor" | "viewer";
export type UserStatus = "invited" | "active" | "deactivated";

/** A row of `app_user`, without secrets (`has_password` instead of the hash). */
export interface UserRow {
  tenant_id: string;
  id: string;
  email: string;
  display_name: string;
  role: UserRole;
  status: UserStatus;
  has_password: boolean;
  last_login_at: Date | null;
  created_at: Date;
  updated_at: Date;
  deleted_at: Date | null;
  row_version: string;
}

const COLUMNS =
  "tenant_id, id, email, display_name, role, status, password_hash is not null as has_password, last_login_at, created_at, updated_at, deleted_at, row_version::text as row_version";

/** Inserts a user; `undefined` when a user with this id exists already (an idempotent retry). */
export async function insertUser(
  trx: Knex.Transaction,
  u: { tenantId: string; id: string; email: string; displayName: string; role: UserRole; passwordHash: string | null },
): Promise<UserRow | undefined> {
  const { rows } = await trx.raw<{ rows: UserRow[] }>(
    `insert into app_user (tenant_id, id, email, display_name, role, status, password_hash, password_changed_at)
     values (?, ?, ?, ?, ?, ?, ?, case when ?::boolean then now() end)
     on conflict (tenant_id, id) do nothing returning ${COLUMNS}`,
    [u.tenantId, u.id, u.email, u.displayName, u.role, u.passwordHash === null ? "invited" : "active", u.passwordHash, u.passwordHash !== null],
  );
  return rows[0];
}

/** The user (deleted ones included), locked for update when `lock` is set. */
export async function findUser(trx: Knex.Transaction, tenantId: string, id: string, lock = false): Promise<UserRow | undefined> {
  const { rows } = await trx.raw<{ rows: UserRow[] }>(
    `select ${COLUMNS} from app_user where tenant_id = ? and id = ?${lock ? " for update" : ""}`,
    [tenantId, id],
  );
  return rows[0];
}

/** Number of users that are not deleted (the `max_users` quota counts them). */
export async function countLiveUsers(trx: Knex.Transaction, tenantId: string): Promise<number> {
  const { rows } = await trx.raw<{ rows: { n: number }[] }>(
    "select count(*)::int as n from app_user where tenant_id = ? and deleted_at is null",
    [tenantId],
  );
  return rows[0]!.n;
}

/**
 * Number of active, non-deleted owners other than `exceptId`. Callers first lock the tenant row
 * (`lockOwners`), so two concurrent demotions cannot both see the other owner.
 */
export async function countOtherActiveOwners(trx: Knex.Transaction, tenantId: string, exceptId: string): Promise<number> {
  const { rows } = await trx.raw<{ rows: { n: number }[] }>(
    `select count(*)::int as n from app_user
     where tenant_id = ? and role = 'owner' and status = 'active' and deleted_at is null and id <> ?`,
    [tenantId, exceptId],
  );
  return rows[0]!.n;
}

/** Serialises changes to a tenant's owners: a row lock on the tenant (key share: readers go on). */
export async function lockOwners(trx: Knex.Transaction, tenantId: string): Promise<void> {
  await trx.raw("select id from tenant where id = ? for no key update", [tenantId]);
}

/** Applies a change, bumps `row_version`; returns the new row. */
export async function updateUser(
  trx: Knex.Transaction,
  tenantId: string,
  id: string,
  fields: { displayName?: string; role?: UserRole; status?: UserStatus; deleted?: boolean },
): Promise<UserRow> {
  const sets: string[] = [];
  const bindings: Knex.Value[] = [];
  if (fields.displayName !== undefined) {
    sets.push("display_name = ?");
    bindings.push(fields.displayName);
  }
  if (fields.role !== undefined) {
    sets.push("role = ?");
    bindings.push(fields.role);
  }
  if (fields.status !== undefined) {
    sets.push("status = ?");
    bindings.push(fields.status);
  }
  if (fields.deleted !== undefined) sets.push(fields.deleted ? "deleted_at = now()" : "deleted_at = null");
  const { rows } = await trx.raw<{ rows: UserRow[] }>(
    `update app_user set ${[...sets, "updated_at = now()", "row_version = row_version + 1"].join(", ")}
     where tenant_id = ? and id = ? returning ${COLUMNS}`,
    [...bindings, tenantId, id],
  );
  return rows[0]!;
}

/** Revokes the user's live sessions; returns how many. */
export async function revokeUserSessions(trx: Knex.Transaction, tenantId: string, userId: string, reason: string): Promise<number> {
  const { rows } = await trx.raw<{ rows: { id: string }[] }>(
    `update session set revoked_at = now(), revoked_reason = ?
     where tenant_id = ? and user_id = ? and revoked_at is null returning id`,
    [reason, tenantId, userId],
  );
  return rows.length;
}

/** Revokes the API keys the user created; returns how many. */
export async function revokeUserApiKeys(trx: Knex.Transaction, tenantId: string, userId: string): Promise<number> {
  const { rows } = await trx.raw<{ rows: { id: string }[] }>(
    "update api_key set revoked_at = now() where tenant_id = ? and created_by = ? and revoked_at is null returning id",
    [tenantId, userId],
  );
  return rows.length;
}

/**
 * A page of users ordered by `lower(email), id`, after the cursor when given. `sort_key` is that
 * `lower(email)` as PostgreSQL computes it, for the next cursor: JavaScript's toLowerCase differs for
 * some characters (`İ`), and a cursor lowered differently would skip or repeat rows.
 */
export async function listUsers(
  trx: Knex.Transaction,
  tenantId: string,
  q: { roles: UserRole[]; statuses: UserStatus[]; emailPrefix: string; showDeleted: boolean; after?: { email: string; id: string }; limit: number },
): Promise<(UserRow & { sort_key: string })[]> {
  const where = ["tenant_id = ?"];
  const bindings: Knex.Value[] = [tenantId];
  if (!q.showDeleted) where.push("deleted_at is null");
  if (q.roles.length > 0) {
    where.push("role = any(?::text[])");
    bindings.push(q.roles);
  }
  if (q.statuses.length > 0) {
    where.push("status = any(?::text[])");
    bindings.push(q.statuses);
  }
  if (q.emailPrefix !== "") {
    where.push("starts_with(lower(email), lower(?))");
    bindings.push(q.emailPrefix);
  }
  if (q.after) {
    where.push("(lower(email), id) > (?, ?::uuid)");
    bindings.push(q.after.email, q.after.id);
  }
  const { rows } = await trx.raw<{ rows: (UserRow & { sort_key: string })[] }>(
    `select ${COLUMNS}, lower(email) as sort_key from app_user where ${where.join(" and ")} order by lower(email), id limit ?`,
    [...bindings, q.limit],
  );
  return rows;
}

/** The live (not deleted) user with this email, compared case-insensitively, locked for update. */
export async function findLiveUserByEmail(trx: Knex.Transaction, tenantId: string, email: string): Promise<UserRow | undefined> {
  const { rows } = await trx.raw<{ rows: UserRow[] }>(
    `select ${COLUMNS} from app_user where tenant_id = ? and lower(email) = lower(?) and deleted_at is null for update`,
    [tenantId, email],
  );
  return rows[0];
}

/** Inserts an active user without a password whose email a single-sign-on provider verified (just-in-time provisioning). */
export async function insertSsoUser(
  trx: Knex.Transaction,
  u: { tenantId: string; email: string; displayName: string; role: UserRole },
): Promise<UserRow> {
  const { rows } = await trx.raw<{ rows: UserRow[] }>(
    `insert into app_user (tenant_id, email, display_name, role, status, email_verified_at)
     values (?, ?, ?, ?, 'active', now()) returning ${COLUMNS}`,
    [u.tenantId, u.email, u.displayName, u.role],
  );
  return rows[0]!;
}

/** Records a successful login (`last_login_at`); returns the user. */
export async function recordLogin(trx: Knex.Transaction, tenantId: string, id: string): Promise<UserRow> {
  const { rows } = await trx.raw<{ rows: UserRow[] }>(
    `update app_user set last_login_at = now() where tenant_id = ? and id = ? returning ${COLUMNS}`,
    [tenantId, id],
  );
  return rows[0]!;
}
