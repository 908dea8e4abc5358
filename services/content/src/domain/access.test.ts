import { test } from "vitest";
import assert from "node:assert/strict";
import { NotFoundError, PermissionDeniedError } from "@promptcraft/platform";
import { permissionOfRank, permissionRank, requirePermission, requireTenantRole, requireUser, roleGrants } from "./access.js";

const caller = (role: "owner" | "admin" | "editor" | "viewer") => ({ tenantId: "t", userId: "u", role });

test("role grants: admins get admin everywhere, editors edit tenant-visible entities, viewers are capped at view", () => {
  assert.deepEqual(roleGrants(caller("owner")), { everyEntity: 3, tenantVisible: 2, cap: 3 });
  assert.deepEqual(roleGrants(caller("admin")), { everyEntity: 3, tenantVisible: 2, cap: 3 });
  assert.deepEqual(roleGrants(caller("editor")), { everyEntity: 0, tenantVisible: 2, cap: 3 });
  assert.deepEqual(roleGrants(caller("viewer")), { everyEntity: 0, tenantVisible: 1, cap: 1 });
  assert.deepEqual([0, 1, 2, 3, 7, -1].map(permissionOfRank), ["none", "view", "edit", "admin", "admin", "none"]);
  assert.equal(permissionRank("edit"), 2);
});

test("outcomes: no view is NOT_FOUND, too little is PERMISSION_DENIED; tenant roles; a user is needed to write", () => {
  assert.throws(() => requirePermission("none", "view", "reading"), NotFoundError);
  assert.throws(() => requirePermission("view", "edit", "changing"), PermissionDeniedError);
  assert.doesNotThrow(() => requirePermission("admin", "edit", "changing"));
  assert.throws(() => requireTenantRole(caller("editor"), "admin", "purging"), PermissionDeniedError);
  assert.doesNotThrow(() => requireTenantRole(caller("editor"), "editor", "creating"));
  assert.throws(() => requireUser({ tenantId: "t", role: "admin" }, "creating"), PermissionDeniedError);
  assert.equal(requireUser(caller("viewer"), "x"), "u");
});
