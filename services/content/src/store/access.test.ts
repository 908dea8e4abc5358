import { afterAll, beforeAll, describe, test } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { withTenant, type Knex } from "@promptcraft/db";
import { createTenant, createUser, openTestKnex } from "@promptcraft/testing";
import type { Caller } from "../domain/access.js";
import { createEntity } from "../fixtures.js";
import { findEntityAccess } from "./access.js";

/*
 * Store tier: content's access rule (the platform's entityPermissionRankSql, which search and graph
 * put in their queries too) through findEntityAccess as promptcraft_content, for every role,
 * ownership, visibility and share.
 */

let knex: Knex;
beforeAll(() => {
  knex = openTestKnex("content-store-access");
});
afterAll(async () => {
  await knex.destroy();
});

async function rank(caller: Caller, entityId: string): Promise<number | undefined> {
  return withTenant(knex, { service: "content", tenantId: caller.tenantId, userId: caller.userId ?? null }, async (trx) => (await findEntityAccess(trx, caller, entityId))?.permission);
}

describe("store/access: the access rule in SQL", () => {
  test("roles: admins everywhere, owners own, tenant visibility gives editors edit and viewers view, viewers capped at view", async () => {
    const tenantId = await createTenant(knex);
    const ownerId = await createUser(knex, tenantId, "editor");
    const users = {
      owner: await createUser(knex, tenantId, "owner"),
      admin: await createUser(knex, tenantId, "admin"),
      editor: await createUser(knex, tenantId, "editor"),
      viewer: await createUser(knex, tenantId, "viewer"),
    };
    const privateId = (await createEntity(knex, tenantId, ownerId, { visibility: "private" })).id;
    const tenantVisibleId = (await createEntity(knex, tenantId, ownerId, { visibility: "tenant" })).id;
    const as = (role: keyof typeof users): Caller => ({ tenantId, userId: users[role], role });
    const ranks = async (entityId: string) => [await rank(as("owner"), entityId), await rank(as("admin"), entityId), await rank(as("editor"), entityId), await rank(as("viewer"), entityId)];
    assert.deepEqual(await ranks(privateId), [3, 3, 0, 0]);
    assert.deepEqual(await ranks(tenantVisibleId), [3, 3, 2, 1]);
    assert.equal(await rank({ tenantId, userId: ownerId, role: "editor" }, privateId), 3, "the owner administers");
    assert.equal(await rank({ tenantId, userId: ownerId, role: "viewer" }, privateId), 1, "an owner demoted to viewer is capped at view");
    const key: Caller = { tenantId, role: "editor", kind: "api_key", credentialId: randomUUID() };
    assert.equal(await rank(key, privateId), 0, "an API key that did not create it sees nothing private");
    assert.equal(await rank(key, tenantVisibleId), 2);
  });

  test("shares: to a user or the whole tenant, live until revoked or expired", async () => {
    const tenantId = await createTenant(knex);
    const ownerId = await createUser(knex, tenantId, "editor");
    const editorId = await createUser(knex, tenantId, "editor");
    const viewerId = await createUser(knex, tenantId, "viewer");
    const entityId = (await createEntity(knex, tenantId, ownerId)).id;
    const share = (grantee: string | null, permission: string, expiresAt: string | null = null) =>
      withTenant(knex, { service: "content", tenantId, userId: ownerId }, (trx) =>
        trx.raw(
          `insert into share (tenant_id, entity_id, grantee_type, grantee_user_id, permission, created_by, expires_at) values (?, ?, ?, ?, ?, ?, ?)`,
          [tenantId, entityId, grantee ? "user" : "tenant", grantee, permission, ownerId, expiresAt],
        ),
      );
    await share(editorId, "edit");
    await share(viewerId, "admin");
    assert.equal(await rank({ tenantId, userId: editorId, role: "editor" }, entityId), 2);
    assert.equal(await rank({ tenantId, userId: viewerId, role: "viewer" }, entityId), 1, "viewers are capped at view");
    const other = await createUser(knex, tenantId, "editor");
    assert.equal(await rank({ tenantId, userId: other, role: "editor" }, entityId), 0);
    await share(null, "view");
    assert.equal(await rank({ tenantId, userId: other, role: "editor" }, entityId), 1, "a tenant-wide share reaches everyone");
    const late = await createUser(knex, tenantId, "editor");
    const entity2 = (await createEntity(knex, tenantId, ownerId)).id;
    await withTenant(knex, { service: "content", tenantId, userId: ownerId }, (trx) =>
      trx.raw(
        `insert into share (tenant_id, entity_id, grantee_type, grantee_user_id, permission, created_by, created_at, expires_at)
         values (?, ?, 'user', ?, 'edit', ?, now() - interval '2 hours', now() - interval '1 hour')`,
        [tenantId, entity2, late, ownerId],
      ),
    );
    assert.equal(await rank({ tenantId, userId: late, role: "editor" }, entity2), 0, "an expired share grants nothing");
  });
});
