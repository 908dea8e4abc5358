import { createPrivateKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { calculateJwkThumbprint, type JWK } from "jose";
import type { Knex } from "@promptcraft/db";
import { ACCESS_TOKEN_ALGORITHM, CLOCK_TOLERANCE_S, MAX_ACCESS_TOKEN_TTL_S, type Logger } from "@promptcraft/platform";
import {
  ensureActiveKey,
  findActiveKey,
  publishedKeys,
  rotateKey,
  type NewSigningKey,
  type SigningKeyRow,
} from "../store/signing-keys.js";
import { decryptPrivateKey, encryptPrivateKey } from "./key-encryption.js";

/**
 * Signing keys of access tokens: Ed25519 (EdDSA) pairs, the private half encrypted at rest.
 *
 * - One key signs at a time; every replica re-reads which one at most {@link SIGNER_CACHE_MS}
 *   after a rotation elsewhere.
 * - A rotated-out key stays in the JWK Set for {@link PUBLISH_AFTER_RETIREMENT_S}: the longest
 *   token lifetime, plus the verifiers' clock tolerance, plus the time a replica may still sign
 *   with it — so every token it signed expires before it disappears.
 */

/** How long a replica keeps signing with the key it last read. */
export const SIGNER_CACHE_MS = 30_000;
/** How long the JWK Set is reused by the JWKS endpoints and identity's own verifier. */
const PUBLISHED_CACHE_MS = 5_000;
/** Seconds a retired key stays published. */
export const PUBLISH_AFTER_RETIREMENT_S = MAX_ACCESS_TOKEN_TTL_S + CLOCK_TOLERANCE_S + SIGNER_CACHE_MS / 1000;

/** A public key as published (RFC 7517 / 8037). */
export interface PublicJwk {
  kty: "OKP";
  crv: "Ed25519";
  kid: string;
  alg: "EdDSA";
  use: "sig";
  x: string;
}

/** The key that signs, decrypted. */
export interface ActiveSigningKey {
  kid: string;
  privateKey: KeyObject;
}

/** A fresh Ed25519 key pair; its `kid` is the RFC 7638 thumbprint of the public key. */
export async function generateSigningKey(kek: Buffer): Promise<{ key: NewSigningKey; privateKey: KeyObject; jwk: PublicJwk }> {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const { x } = publicKey.export({ format: "jwk" }) as JWK;
  const kid = await calculateJwkThumbprint({ kty: "OKP", crv: "Ed25519", x: x! }, "sha256");
  const jwk: PublicJwk = { kty: "OKP", crv: "Ed25519", kid, alg: ACCESS_TOKEN_ALGORITHM, use: "sig", x: x! };
  const pem = privateKey.export({ format: "pem", type: "pkcs8" }).toString();
  return {
    key: { kid, algorithm: "EdDSA", publicJwk: { ...jwk }, encryptedPrivateKey: encryptPrivateKey(pem, kek, kid) },
    privateKey,
    jwk,
  };
}

/** The published form of a stored key (only the public fields, whatever the row holds). */
export function publicJwkOf(row: SigningKeyRow): PublicJwk {
  const x = row.public_jwk.x;
  if (row.algorithm !== "EdDSA" || row.public_jwk.kty !== "OKP" || row.public_jwk.crv !== "Ed25519" || !x) {
    throw new Error(`signing key ${row.kid}: not an Ed25519 key`);
  }
  return { kty: "OKP", crv: "Ed25519", kid: row.kid, alg: ACCESS_TOKEN_ALGORITHM, use: "sig", x };
}

/**
 * Identity's view of its signing keys: which key signs (cached briefly), the JWK Set (cached
 * briefly), rotation.
 */
export class KeyRing {
  private signer: { key: ActiveSigningKey; readAt: number } | undefined;
  private published: { keys: PublicJwk[]; readAt: number } | undefined;
  private readonly decrypted = new Map<string, KeyObject>();

  constructor(
    private readonly db: Knex,
    /** The key-encryption key; OIDC client secrets and PKCE verifiers are encrypted with it too. */
    readonly kek: Buffer,
    private readonly log?: Logger,
  ) {}

  /** Makes sure a key signs (at start): creates one if there is none, safely across replicas. */
  async ensureActive(): Promise<ActiveSigningKey> {
    const generated = await generateSigningKey(this.kek);
    const { key, created } = await ensureActiveKey(this.db, () => generated.key);
    if (created) this.log?.info({ kid: key.kid }, "created the first access-token signing key");
    return this.remember(key);
  }

  /** The key that signs now (re-read from the database at most every {@link SIGNER_CACHE_MS}). */
  async signingKey(): Promise<ActiveSigningKey> {
    if (this.signer && Date.now() - this.signer.readAt < SIGNER_CACHE_MS) return this.signer.key;
    const row = await findActiveKey(this.db);
    return row ? this.remember(row) : this.ensureActive();
  }

  /** Every key that may have signed a still-valid token, the signing key first. */
  async publishedJwks(): Promise<PublicJwk[]> {
    if (this.published && Date.now() - this.published.readAt < PUBLISHED_CACHE_MS) return this.published.keys;
    const keys = (await publishedKeys(this.db)).map(publicJwkOf);
    this.published = { keys, readAt: Date.now() };
    return keys;
  }

  /**
   * Rotation: a new key signs from now; the previous one verifies until its tokens have expired.
   * Returns the new key's public half and when it started signing.
   */
  async rotate(): Promise<{ jwk: PublicJwk; activatedAt: Date }> {
    const generated = await generateSigningKey(this.kek);
    const row = await rotateKey(this.db, generated.key, PUBLISH_AFTER_RETIREMENT_S);
    this.remember(row);
    this.published = undefined;
    this.log?.info({ kid: row.kid }, "rotated the access-token signing key");
    return { jwk: generated.jwk, activatedAt: row.activated_at! };
  }

  private remember(row: SigningKeyRow): ActiveSigningKey {
    let privateKey = this.decrypted.get(row.kid);
    if (!privateKey) {
      privateKey = createPrivateKey(decryptPrivateKey(row.private_key, this.kek, row.kid));
      this.decrypted.set(row.kid, privateKey);
    }
    const key = { kid: row.kid, privateKey };
    this.signer = { key, readAt: Date.now() };
    return key;
  }
}
