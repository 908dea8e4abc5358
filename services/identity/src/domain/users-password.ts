import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from "node:crypto";
import { InvalidArgumentError } from "@promptcraft/platform";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";

/**
 * Password hashes: scrypt (RFC 7914) with N = 2^15, r = 8, p = 1 (32 MiB, the brief allows scrypt
 * as an alternative to argon2id), a 16-byte random salt and a 32-byte key, stored as
 * `$scrypt$ln=15,r=8,p=1$<salt b64>$<hash b64>` (the PHC string format, unpadded base64).
 */
const LOG_N = 15;
const R = 8;
const P = 1;
const KEY_LEN = 32;
const MAX_MEM = 64 * 1024 * 1024;

function derive(password: string, salt: Buffer, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password.normalize("NFC"), salt, KEY_LEN, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

const b64 = (buf: Buffer) => buf.toString("base64").replace(/=+$/, "");

/** Hashes a password for `app_user.password_hash`. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, { N: 2 ** LOG_N, r: R, p: P, maxmem: MAX_MEM });
  return `$scrypt$ln=${LOG_N},r=${R},p=${P}$${b64(salt)}$${b64(key)}`;
}

/** Whether `password` matches a hash made by {@link hashPassword} (constant-time comparison). */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const m = /^\$scrypt\$ln=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/.exec(stored);
  if (!m) return false;
  const [, ln, r, p, salt, hash] = m;
  const expected = Buffer.from(hash!, "base64");
  const key = await derive(password, Buffer.from(salt!, "base64"), { N: 2 ** Number(ln), r: Number(r), p: Number(p), maxmem: MAX_MEM });
  return key.length === expected.length && timingSafeEqual(key, expected);
}

/**
 * The password policy beyond the contract's 12–256 characters: at least 4 different characters,
 * not the email address. INVALID_ARGUMENT (PASSWORD_POLICY) on `field`.
 */
export function checkPasswordPolicy(password: string, email: string, field: string): void {
  if (password === "") return;
  let problem: string | undefined;
  if (new Set(password).size < 4) problem = "must use at least 4 different characters";
  else if (password.trim().toLowerCase() === email.trim().toLowerCase()) problem = "must not be the email address";
  if (problem) throw new InvalidArgumentError({ field, description: problem }, { reason: ErrorReason.PASSWORD_POLICY });
}
