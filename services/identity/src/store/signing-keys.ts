import { withServiceRole, type Knex } from "@promptcraft/db";

/**
 * SQL of `signing_key` (platform-wide, not tenant data: no row-level security, identity's role
 * only). Lifecycle: activated (signs) -> retired (verifies only) -> `expires_at` passed (dropped
 * from the JWK Set). At most one key is active: the partial unique index `signing_key_one_active_key`
 * guarantees it, and every change takes a table lock so that two replicas never race into a
 * unique violation.
 */

/** A row of `signing_key`. */
export interface SigningKeyRow {
  kid: string;
  algorithm: "EdDSA" | "ES256";
  public_jwk: Record<string, string>;
  /** Encrypted PKCS#8 (see domain/key-encryption.ts). */
  private_key: string;
  created_at: Date;
  activated_at: Date | null;
  retired_at: Date | null;
  expires_at: Date | null;
}

/** A key about to be stored. */
export interface NewSigningKey {
  kid: string;
  algorithm: "EdDSA";
  publicJwk: Record<string, string>;
  encryptedPrivateKey: string;
}

const COLUMNS = "kid, algorithm, public_jwk, private_key, created_at, activated_at, retired_at, expires_at";

/**
 * Serialises key changes across replicas. SHARE ROW EXCLUSIVE conflicts with itself and with
 * writers, not with readers: signing and JWKS reads go on.
 */
async function lockKeys(trx: Knex.Transaction): Promise<void> {
  await trx.raw("lock table signing_key in share row exclusive mode");
}

async function selectActive(trx: Knex.Transaction): Promise<SigningKeyRow | undefined> {
  const result = await trx.raw<{ rows: SigningKeyRow[] }>(
    `select ${COLUMNS} from signing_key where activated_at is not null and retired_at is null`,
  );
  return result.rows[0];
}

async function insertActive(trx: Knex.Transaction, key: NewSigningKey): Promise<SigningKeyRow> {
  const result = await trx.raw<{ rows: SigningKeyRow[] }>(
    `insert into signing_key (kid, algorithm, public_jwk, private_key, activated_at)
     values (?, ?, ?::jsonb, ?, now())
     returning ${COLUMNS}`,
    [key.kid, key.algorithm, JSON.stringify(key.publicJwk), key.encryptedPrivateKey],
  );
  return result.rows[0]!;
}

/** The key that signs now, if any. */
export async function findActiveKey(db: Knex): Promise<SigningKeyRow | undefined> {
  return withServiceRole(db, "identity", (trx) => selectActive(trx));
}

/**
 * Makes sure a key signs: returns the active key, or stores `candidate()` as the active key if
 * there is none. Concurrent callers (replicas starting together) all get the same key.
 */
export async function ensureActiveKey(db: Knex, candidate: () => NewSigningKey): Promise<{ key: SigningKeyRow; created: boolean }> {
  const existing = await findActiveKey(db);
  if (existing) return { key: existing, created: false };
  return withServiceRole(db, "identity", async (trx) => {
    await lockKeys(trx);
    const active = await selectActive(trx);
    if (active) return { key: active, created: false };
    return { key: await insertActive(trx, candidate()), created: true };
  });
}

/**
 * Rotation, in one transaction: the active key stops signing (`retired_at`) and leaves the JWK Set
 * `publishForS` seconds later (when every token it signed has expired); `next` signs from now.
 */
export async function rotateKey(db: Knex, next: NewSigningKey, publishForS: number): Promise<SigningKeyRow> {
  return withServiceRole(db, "identity", async (trx) => {
    await lockKeys(trx);
    await trx.raw(
      `update signing_key set retired_at = now(), expires_at = now() + make_interval(secs => ?)
       where activated_at is not null and retired_at is null`,
      [publishForS],
    );
    return insertActive(trx, next);
  });
}

/**
 * Keys whose tokens may still be valid: the active key first, then retired keys not yet expired,
 * newest first.
 */
export async function publishedKeys(db: Knex): Promise<SigningKeyRow[]> {
  return withServiceRole(db, "identity", async (trx) => {
    const result = await trx.raw<{ rows: SigningKeyRow[] }>(
      `select ${COLUMNS} from signing_key
       where activated_at is not null and (expires_at is null or expires_at > now())
       order by (retired_at is null) desc, activated_at desc`,
    );
    return result.rows;
  });
}

/** One key by id, whatever its state (tests, diagnostics). */
export async function findKey(db: Knex, kid: string): Promise<SigningKeyRow | undefined> {
  return withServiceRole(db, "identity", async (trx) => {
    const result = await trx.raw<{ rows: SigningKeyRow[] }>(`select ${COLUMNS} from signing_key where kid = ?`, [kid]);
    return result.rows[0];
  });
}
