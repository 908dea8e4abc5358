import { describe, test } from "vitest";
import assert from "node:assert/strict";
import { z } from "zod";
import { PermissionDeniedError, UnauthenticatedError } from "./errors.js";
import { isPlatformAdmin, platformAdminTokenField, requirePlatformAdmin } from "./platform-admin.js";

const TOKEN = "platform-admin-token-0123456789abcdef";
const ctx = (authorization: string | undefined) => ({ header: (name: string) => (name === "authorization" ? authorization : undefined) });

describe("platform admin", () => {
  test("the configured secret is the platform admin; another secret, a prefix or no configured secret is not", () => {
    assert.equal(isPlatformAdmin(ctx(`Bearer ${TOKEN}`), TOKEN), true);
    assert.equal(isPlatformAdmin(ctx(`Bearer ${TOKEN}x`), TOKEN), false);
    assert.equal(isPlatformAdmin(ctx(`Bearer ${TOKEN.slice(0, 10)}`), TOKEN), false);
    assert.equal(isPlatformAdmin(ctx(`Bearer ${TOKEN}`), undefined), false);
    assert.equal(isPlatformAdmin(ctx(undefined), TOKEN), false);
  });

  test("requirePlatformAdmin: no credentials is UNAUTHENTICATED, someone else's is PERMISSION_DENIED", () => {
    assert.throws(() => requirePlatformAdmin(ctx(undefined), TOKEN), UnauthenticatedError);
    assert.throws(() => requirePlatformAdmin(ctx("Bearer someone-else"), TOKEN), PermissionDeniedError);
    assert.throws(() => requirePlatformAdmin(ctx(`Bearer ${TOKEN}`), undefined), PermissionDeniedError);
    requirePlatformAdmin(ctx(`Bearer ${TOKEN}`), TOKEN);
  });

  test("the config field: empty is unset, short or odd characters are refused", () => {
    const schema = z.object({ PLATFORM_ADMIN_TOKEN: platformAdminTokenField });
    assert.equal(schema.parse({ PLATFORM_ADMIN_TOKEN: "" }).PLATFORM_ADMIN_TOKEN, undefined);
    assert.equal(schema.parse({}).PLATFORM_ADMIN_TOKEN, undefined);
    assert.equal(schema.parse({ PLATFORM_ADMIN_TOKEN: TOKEN }).PLATFORM_ADMIN_TOKEN, TOKEN);
    for (const bad of ["short", `${TOKEN} with spaces`]) assert.equal(schema.safeParse({ PLATFORM_ADMIN_TOKEN: bad }).success, false, bad);
  });
});
