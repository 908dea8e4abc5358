import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import type { Logger } from "@promptcraft/platform";

/**
 * Encryption at rest of the signing keys' private halves: AES-256-GCM under the key-encryption key
 * (KEK) from `IDENTITY_KEY_ENCRYPTION_KEY`, with the key's `kid` as additional authenticated data,
 * so a ciphertext moved to another row does not decrypt. Stored form:
 * `aes256gcm:v1:<iv>:<tag>:<ciphertext>` (base64url parts).
 */

const PREFIX = "aes256gcm:v1";

/**
 * The development KEK: derived from a public string, so it protects nothing. Accepted only when
 * NODE_ENV is not `production` (the config refuses to start otherwise), and logged as insecure.
 */
const DEVELOPMENT_KEK = createHash("sha256").update("promptcraft insecure development key-encryption key").digest();

/** The configured KEK, or the development one with a warning (to `log`; the start-up passes it, later users need not repeat it). */
export function keyEncryptionKey(configured: string | undefined, nodeEnv: string | undefined, log?: Logger): Buffer {
  if (configured !== undefined) {
    const key = Buffer.from(configured, "base64");
    if (key.length !== 32) throw new Error("IDENTITY_KEY_ENCRYPTION_KEY must be 32 bytes, base64");
    return key;
  }
  if (nodeEnv === "production") throw new Error("IDENTITY_KEY_ENCRYPTION_KEY is required when NODE_ENV=production");
  log?.warn(
    "IDENTITY_KEY_ENCRYPTION_KEY is not set: signing keys are encrypted with the INSECURE development key. Never run like this in production.",
  );
  return DEVELOPMENT_KEK;
}

export function encryptPrivateKey(plaintext: string, kek: Buffer, kid: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", kek, iv);
  cipher.setAAD(Buffer.from(kid, "utf8"));
  const ciphertext = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
  return [PREFIX, iv.toString("base64url"), cipher.getAuthTag().toString("base64url"), ciphertext.toString("base64url")].join(":");
}

export function decryptPrivateKey(stored: string, kek: Buffer, kid: string): string {
  const parts = stored.split(":");
  if (parts.length !== 5 || `${parts[0]}:${parts[1]}` !== PREFIX) {
    throw new Error(`signing key ${kid}: private key is not in the ${PREFIX} format`);
  }
  const [, , iv, tag, ciphertext] = parts as [string, string, string, string, string];
  try {
    const decipher = createDecipheriv("aes-256-gcm", kek, Buffer.from(iv, "base64url"));
    decipher.setAAD(Buffer.from(kid, "utf8"));
    decipher.setAuthTag(Buffer.from(tag, "base64url"));
    return Buffer.concat([decipher.update(Buffer.from(ciphertext, "base64url")), decipher.final()]).toString("utf8");
  } catch (err) {
    throw new Error(`signing key ${kid} does not decrypt: wrong IDENTITY_KEY_ENCRYPTION_KEY, or the row was altered`, { cause: err });
  }
}
