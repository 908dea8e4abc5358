import { test } from "vitest";
import assert from "node:assert/strict";
import { canonicalJson } from "@promptcraft/db";
import { derivedUuid } from "./request-ids.js";
import { hashPassword, verifyPassword } from "./passwords.js";

test("derived ids are stable UUIDs per key; canonical JSON ignores key order", () => {
  const a = derivedUuid("tenant", "r1");
  assert.match(a, /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(derivedUuid("tenant", "r1"), a);
  assert.notEqual(derivedUuid("tenant-owner", "r1"), a);
  assert.equal(canonicalJson({ b: 1, a: [1, { d: 2, c: 3 }] }), canonicalJson({ a: [1, { c: 3, d: 2 }], b: 1 }));
});

test("password hashes verify the right password only", async () => {
  const hash = await hashPassword("correct horse battery");
  assert.match(hash, /^\$scrypt\$ln=15,r=8,p=1\$/);
  assert.equal(await verifyPassword("correct horse battery", hash), true);
  assert.equal(await verifyPassword("wrong horse battery", hash), false);
});
