import { test } from "vitest";
import assert from "node:assert/strict";
import { apiKeyIdOf, NotFoundError, PermissionDeniedError } from "@promptcraft/platform";
import {
  permissionOfRank,
  permissionRank,
  principalColumns,
  principalOf,
  requirePermission,
  requireTenantRole,
  requireUser,
  roleGrants,
} from "./access.js";

const caller = (role: "owner" | "admin" | "editor" | "viewer") => ({ tenantId: "t", userId: "u", role });

test("role grants: admins get admin everywhere, editors edit tenant-visible entities, viewers are capped at view", () => {
  assert.deepEqual(roleGrants(caller("owner")), { everyEntity: 3, tenantVisible: 2, cap: 3 });
  assert.deepEqual(roleGrants(caller("admin")), { everyEntity: 3, tenantVisible: 2, cap: 3 });
  assert.deepEqual(roleGrants(caller("editor")), { everyEntity: 0, tenantVisible: 2, cap: 3 });
  assert.deepEqual(roleGrants(caller("viewer")), { everyEntity: 0, tenantVisible: 1, cap: 1 });
  assert.deepEqual([0, 1, 2, 3, 7, -1].map(permissionOfRank), ["none", "view", "edit", "admin", "admin", "none"]);
  assert.equal(permissionRank("edit"), 2);
});

test("outcomes: no view is NOT_FOUND, too little is PERMISSION_DENIED; tenant roles; favorites need a user", () => {
  assert.throws(() => requirePermission("none", "view", "reading"), NotFoundError);
  assert.throws(() => requirePermission("view", "edit", "changing"), PermissionDeniedError);
  assert.doesNotThrow(() => requirePermission("admin", "edit", "changing"));
  assert.throws(() => requireTenantRole(caller("editor"), "admin", "purging"), PermissionDeniedError);
  assert.doesNotThrow(() => requireTenantRole(caller("editor"), "editor", "creating"));
  assert.throws(() => requireUser({ tenantId: "t", role: "admin" }, "creating"), PermissionDeniedError);
  assert.equal(requireUser(caller("viewer"), "x"), "u");
});

test("principals: a user by their id, an API key as api_key:<id>; a key writes as itself", () => {
  const key = { tenantId: "t", role: "editor" as const, kind: "api_key" as const, credentialId: "k" };
  assert.deepEqual(principalOf(caller("editor")), { kind: "user", id: "u" });
  assert.deepEqual(principalOf(key), { kind: "api_key", id: "k" });
  assert.equal(apiKeyIdOf(key), "k");
  assert.equal(apiKeyIdOf({ ...caller("editor"), kind: "access_token", credentialId: "session" }), null);
  assert.throws(() => principalOf({ tenantId: "t", role: "editor" }), PermissionDeniedError);
  assert.deepEqual(principalColumns({ kind: "api_key", id: "k" }), [null, "k"]);
});
