import { InvalidArgumentError } from "@promptcraft/platform";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from "node:crypto";

/**
 * Password hashing with scrypt (node:crypto; no native addon to build): N = 2^15, r = 8, p = 1
 * (32 MiB per hash; issue 3 allows scrypt next to argon2id), a 16-byte random salt and a 32-byte key, stored as a PHC-style string that carries its parameters,
 * so they can be raised later without invalidating stored hashes:
 *
 *     $scrypt$ln=15,r=8,p=1$<salt, base64 no padding>$<key, base64 no padding>
 *
 * Comparison is constant-time. The work runs on libuv's thread pool, not the event loop.
 */

export interface ScryptParams {
  /** log2 of N (cost). */
  ln: number;
  r: number;
  p: number;
}

export const DEFAULT_SCRYPT_PARAMS: ScryptParams = { ln: 15, r: 8, p: 1 };

const SALT_BYTES = 16;
const KEY_BYTES = 32;
/** Upper bounds accepted when reading a stored hash (refuses absurd work from a bad row). */
const MAX_LN = 20;
const MAX_R = 32;
const MAX_P = 16;

function scryptAsync(password: string, salt: Buffer, keylen: number, params: ScryptParams): Promise<Buffer> {
  const N = 2 ** params.ln;
  const options: ScryptOptions = { N, r: params.r, p: params.p, maxmem: 128 * N * params.r * params.p + 16 * 1024 * 1024 };
  return new Promise((resolve, reject) => {
    scrypt(password.normalize("NFC"), salt, keylen, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

const b64 = (buf: Buffer) => buf.toString("base64").replace(/=+$/, "");

/** Hashes `password` into an encoded string (see the module comment). */
export async function hashPassword(password: string, params: ScryptParams = DEFAULT_SCRYPT_PARAMS): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await scryptAsync(password, salt, KEY_BYTES, params);
  return `$scrypt$ln=${params.ln},r=${params.r},p=${params.p}$${b64(salt)}$${b64(key)}`;
}

interface ParsedHash {
  params: ScryptParams;
  salt: Buffer;
  key: Buffer;
}

/** Parses an encoded hash; undefined if it is not one this module wrote (or is out of bounds). */
export function parsePasswordHash(encoded: string): ParsedHash | undefined {
  const m = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]{16,88})\$([A-Za-z0-9+/]{16,88})$/.exec(encoded);
  if (!m) return undefined;
  const params = { ln: Number(m[1]), r: Number(m[2]), p: Number(m[3]) };
  if (params.ln < 10 || params.ln > MAX_LN || params.r < 1 || params.r > MAX_R || params.p < 1 || params.p > MAX_P) return undefined;
  const salt = Buffer.from(m[4]!, "base64");
  const key = Buffer.from(m[5]!, "base64");
  if (salt.length < 8 || key.length < 16) return undefined;
  return { params, salt, key };
}

/** Whether `password` matches `encoded`. An unreadable hash never matches (and still costs a hash). */
export async function verifyPassword(password: string, encoded: string | null | undefined): Promise<boolean> {
  const parsed = encoded ? parsePasswordHash(encoded) : undefined;
  if (!parsed) {
    await burnPasswordHash(password);
    return false;
  }
  const key = await scryptAsync(password, parsed.salt, parsed.key.length, parsed.params);
  return timingSafeEqual(key, parsed.key);
}

/** Whether a stored hash uses weaker parameters than the current default (rehash at next login). */
export function needsRehash(encoded: string): boolean {
  const parsed = parsePasswordHash(encoded);
  if (!parsed) return true;
  const d = DEFAULT_SCRYPT_PARAMS;
  return parsed.params.ln < d.ln || parsed.params.r < d.r || parsed.params.p < d.p;
}

let dummy: Promise<string> | undefined;

/**
 * Spends the same work as verifying a real password, for a login whose user is unknown (or has no
 * password), so the answer takes about as long as a wrong password.
 */
export async function burnPasswordHash(password: string): Promise<void> {
  dummy ??= hashPassword(randomBytes(16).toString("hex"));
  const parsed = parsePasswordHash(await dummy)!;
  const key = await scryptAsync(password, parsed.salt, parsed.key.length, parsed.params);
  timingSafeEqual(key, parsed.key);
}

/** Minimum and maximum length of a new password (the contract validates them too). */
export const PASSWORD_MIN_LENGTH = 12;
export const PASSWORD_MAX_LENGTH = 256;

/**
 * Checks a new password against the policy: 12–256 characters (code points), not one repeated
 * character, not the email address. Returns the problem, or undefined if the password is fine.
 */
export function passwordPolicyProblem(password: string, email?: string): string | undefined {
  const length = [...password].length;
  if (length < PASSWORD_MIN_LENGTH) return `must be at least ${PASSWORD_MIN_LENGTH} characters`;
  if (length > PASSWORD_MAX_LENGTH) return `must be at most ${PASSWORD_MAX_LENGTH} characters`;
  if (new Set(password).size < 4) return "must use at least 4 different characters";
  if (email && password.trim().toLowerCase() === email.trim().toLowerCase()) return "must not be the email address";
  return undefined;
}

/**
 * Throws INVALID_ARGUMENT (PASSWORD_POLICY) on `field` when a new password breaks the policy. An
 * empty password means "none yet" (an invited user) and passes.
 */
export function checkPasswordPolicy(password: string, email: string, field: string): void {
  if (password === "") return;
  const problem = passwordPolicyProblem(password, email);
  if (problem) throw new InvalidArgumentError({ field, description: problem }, { reason: ErrorReason.PASSWORD_POLICY });
}
