import { test } from "vitest";
import assert from "node:assert/strict";
import { hashPassword, needsRehash, parsePasswordHash, passwordPolicyProblem, verifyPassword } from "./passwords.js";
import { accountKey, addressKey, afterFailure, retryAfterMs, type ThrottlePolicy } from "./login-throttle.js";

test("scrypt hashes carry their parameters, verify, and reject the wrong password", async () => {
  const hash = await hashPassword("correct horse battery staple");
  assert.match(hash, /^\$scrypt\$ln=15,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
  assert.notEqual(await hashPassword("correct horse battery staple"), hash, "salted");
  assert.equal(await verifyPassword("correct horse battery staple", hash), true);
  assert.equal(await verifyPassword("correct horse battery stapler", hash), false);
  assert.equal(await verifyPassword("x", "not a hash"), false);
  assert.equal(await verifyPassword("x", null), false);
  assert.equal(needsRehash(hash), false);
  const weaker = await hashPassword("pw", { ln: 14, r: 8, p: 1 });
  assert.equal(needsRehash(weaker), true);
  assert.equal(await verifyPassword("pw", weaker), true, "old parameters still verify");
  assert.equal(parsePasswordHash("$scrypt$ln=40,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), undefined, "absurd cost refused");
});

test("password policy", () => {
  assert.ok(passwordPolicyProblem("short"));
  assert.ok(passwordPolicyProblem("aaaaaaaaaaaaaaaa"));
  assert.ok(passwordPolicyProblem("Someone@Example.test", "someone@example.test"));
  assert.equal(passwordPolicyProblem("correct horse battery staple"), undefined);
});

test("throttling: allowance, then doubling blocks up to the maximum; stale counters restart", () => {
  const policy: ThrottlePolicy = { accountFailures: 3, addressFailures: 10, baseDelayS: 2, maxDelayS: 10, windowS: 900 };
  const now = new Date("2026-01-01T00:00:00Z");
  let state: { failureCount: number; lastFailureAt: Date; blockedUntil: Date | null } | undefined;
  const blocks: (number | null)[] = [];
  for (let i = 0; i < 6; i++) {
    const next = afterFailure(state, "account", policy, now);
    state = { failureCount: next.failureCount, lastFailureAt: now, blockedUntil: next.blockedUntil };
    blocks.push(next.blockedUntil ? (next.blockedUntil.getTime() - now.getTime()) / 1000 : null);
  }
  assert.deepEqual(blocks, [null, null, null, 2, 4, 8]);
  assert.equal((afterFailure(state, "account", policy, now).blockedUntil!.getTime() - now.getTime()) / 1000, 10);
  assert.equal(retryAfterMs(state, now), 8000);
  assert.equal(retryAfterMs(state, new Date(now.getTime() + 9000)), 0);
  const later = new Date(now.getTime() + 901_000);
  assert.deepEqual(afterFailure(state, "account", policy, later), { failureCount: 1, blockedUntil: null, resetWindow: true });
  // The address allowance is separate.
  assert.equal(afterFailure({ failureCount: 5, lastFailureAt: now, blockedUntil: null }, "address", policy, now).blockedUntil, null);
  assert.equal(afterFailure({ failureCount: 10, lastFailureAt: now, blockedUntil: null }, "address", policy, now).blockedUntil?.getTime(), now.getTime() + 2000, "past its own allowance");
});

test("throttle keys: accounts per tenant and lower-case email, addresses as IPv4 or IPv6 /64", () => {
  assert.equal(accountKey({ id: "t1" }, " Bob@Example.TEST "), "t1:bob@example.test");
  assert.equal(accountKey({ slug: "acme" }, "bob@example.test"), "slug:acme:bob@example.test");
  assert.equal(addressKey("127.0.0.1:5000"), "127.0.0.1");
  assert.equal(addressKey("::ffff:10.1.2.3:443"), "10.1.2.3");
  assert.equal(addressKey("[2001:db8:1:2:3:4:5:6]:443"), "2001:db8:1:2::/64");
  assert.equal(addressKey("2001:db8::1:50000"), "2001:db8:0:0::/64");
  assert.equal(addressKey("::1:50000"), "0:0:0:0::/64");
  assert.equal(addressKey(undefined), undefined);
  assert.equal(addressKey("unix:/tmp/sock"), undefined);
});
