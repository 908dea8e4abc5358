import { test } from "node:test";
import assert from "node:assert/strict";
import { decodePageToken, encodePageToken, pageSize } from "./users-paging.js";
import { canonical, derivedUuid } from "./tenants.js";
import { hashPassword, verifyPassword } from "./passwords.js";

test("page tokens round-trip, are bound to the parameters and expire", () => {
  const params = { r: ["viewer"], d: false };
  const token = encodePageToken({ email: "a@b.test", id: "x" }, params, 1_000);
  assert.deepEqual(decodePageToken(token, params, 2_000), { email: "a@b.test", id: "x" });
  assert.equal(decodePageToken("", params), undefined);
  assert.throws(() => decodePageToken(token, { ...params, d: true }, 2_000), /page token/);
  assert.throws(() => decodePageToken(token, params, 1_000 + 24 * 3600 * 1000 + 1), /page token/);
  assert.throws(() => decodePageToken("not json", params), /page token/);
  assert.equal(pageSize(0), 50);
  assert.equal(pageSize(7), 7);
});

test("derived ids are stable UUIDs per key; canonical JSON ignores key order", () => {
  const a = derivedUuid("tenant", "r1");
  assert.match(a, /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(derivedUuid("tenant", "r1"), a);
  assert.notEqual(derivedUuid("tenant-owner", "r1"), a);
  assert.equal(canonical({ b: 1, a: [1, { d: 2, c: 3 }] }), canonical({ a: [1, { c: 3, d: 2 }], b: 1 }));
});

test("password hashes verify the right password only", async () => {
  const hash = await hashPassword("correct horse battery");
  assert.match(hash, /^\$scrypt\$ln=15,r=8,p=1\$/);
  assert.equal(await verifyPassword("correct horse battery", hash), true);
  assert.equal(await verifyPassword("wrong horse battery", hash), false);
});
