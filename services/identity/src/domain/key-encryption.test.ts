import { test, describe } from "vitest";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { ConfigError, createLogger, loadConfig } from "@promptcraft/platform";
import { IdentityConfig } from "../config.js";
import { decryptPrivateKey, encryptPrivateKey, keyEncryptionKey } from "./key-encryption.js";

const log = createLogger("test", "silent");
const PEM = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n";
const BASE = { DATABASE_URL: "postgres://localhost/x" };

describe("signing keys at rest (AES-256-GCM)", () => {
  test("round trip; never the plaintext in the stored form", () => {
    const kek = randomBytes(32);
    const stored = encryptPrivateKey(PEM, kek, "kid-1");
    assert.match(stored, /^aes256gcm:v1:/);
    assert.doesNotMatch(stored, /PRIVATE KEY/);
    assert.notEqual(encryptPrivateKey(PEM, kek, "kid-1"), stored, "a fresh IV every time");
    assert.equal(decryptPrivateKey(stored, kek, "kid-1"), PEM);
  });

  test("a wrong key-encryption key, another row's kid, or an altered ciphertext does not decrypt", () => {
    const kek = randomBytes(32);
    const stored = encryptPrivateKey(PEM, kek, "kid-1");
    assert.throws(() => decryptPrivateKey(stored, randomBytes(32), "kid-1"), /does not decrypt/);
    assert.throws(() => decryptPrivateKey(stored, kek, "kid-2"), /does not decrypt/);
    const parts = stored.split(":");
    const ciphertext = Buffer.from(parts[4]!, "base64url");
    ciphertext[0] = ciphertext[0]! ^ 1;
    parts[4] = ciphertext.toString("base64url");
    assert.throws(() => decryptPrivateKey(parts.join(":"), kek, "kid-1"), /does not decrypt/);
    assert.throws(() => decryptPrivateKey(PEM, kek, "kid-1"), /not in the aes256gcm:v1 format/);
  });

  test("the configured key is used; the development key only outside production", () => {
    const configured = randomBytes(32);
    assert.deepEqual(keyEncryptionKey(configured.toString("base64"), "production", log), configured);
    assert.equal(keyEncryptionKey(undefined, "development", log).length, 32);
    assert.throws(() => keyEncryptionKey(undefined, "production", log), /required when NODE_ENV=production/);
  });
});

describe("identity config", () => {
  test("production without IDENTITY_KEY_ENCRYPTION_KEY fails fast, naming it", () => {
    assert.throws(() => loadConfig(IdentityConfig, { ...BASE, NODE_ENV: "production" }), (err: Error) => err instanceof ConfigError && /IDENTITY_KEY_ENCRYPTION_KEY/.test(err.message));
    const ok = loadConfig(IdentityConfig, { ...BASE, NODE_ENV: "production", IDENTITY_KEY_ENCRYPTION_KEY: randomBytes(32).toString("base64") });
    assert.equal(ok.ACCESS_TOKEN_TTL_S, 900);
    assert.equal(ok.TOKEN_ISSUER, "promptcraft-identity");
  });

  test("bad values are refused: a short KEK, a TTL over 15 minutes, a short admin token", () => {
    for (const env of [
      { IDENTITY_KEY_ENCRYPTION_KEY: randomBytes(16).toString("base64") },
      { ACCESS_TOKEN_TTL_S: "901" },
      { PLATFORM_ADMIN_TOKEN: "short" },
    ]) {
      assert.throws(() => loadConfig(IdentityConfig, { ...BASE, ...env }), (err: Error) => err instanceof ConfigError && err.message.includes(Object.keys(env)[0]!));
    }
  });

  test("an empty variable means unset", () => {
    const config = loadConfig(IdentityConfig, { ...BASE, IDENTITY_KEY_ENCRYPTION_KEY: "", PLATFORM_ADMIN_TOKEN: "" });
    assert.equal(config.IDENTITY_KEY_ENCRYPTION_KEY, undefined);
    assert.equal(config.PLATFORM_ADMIN_TOKEN, undefined);
  });
});
