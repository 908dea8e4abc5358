import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { EntityType, Permission, Visibility } from "@promptcraft/proto/promptcraft/content/v1/resources_pb";
import { AuthService } from "@promptcraft/proto/promptcraft/identity/v1/auth_service_pb";
import { IdentityService } from "@promptcraft/proto/promptcraft/identity/v1/identity_service_pb";
import { ContentHarness, DENIED, failure, NOT_FOUND, ok, PROTOCOLS, type Outcome } from "./content-e2e-helpers.js";
import { unaryCall } from "./rpc-outcomes.js";

/**
 * API keys write content within their role (issue 9, item 4), over gRPC and Connect: an editor key
 * creates, updates and rolls back entities, owns what it creates, and is recorded as
 * `api_key:<id>` as owner, author, label updater, share granter and in the label history, and as
 * actor `api_key` in the event log. A viewer key writes nothing; per-user things (favorites, one's
 * own sessions, password and linked identities) are refused with a clear error; another tenant's
 * key still finds nothing.
 */

const h = new ContentHarness();
beforeAll(() => h.start());
afterAll(() => h.close());

const M = ContentService.method;
const principal = (keyId: string) => `api_key:${keyId}`;

/** The ErrorInfo metadata of a failure (empty for a success). */
const metadataOf = (outcome: Outcome<unknown>): Record<string, string> => (outcome.ok ? {} : outcome.metadata);

for (const protocol of PROTOCOLS) {
  describe(`API keys writing content over ${protocol}`, () => {
    test("an editor key creates, updates and rolls back an entity; it is the owner and author everywhere it shows", async () => {
      const t = await h.tenantWith(["owner"]);
      const owner = t.users[0]!;
      const key = await h.newApiKey(owner.token, "editor");
      const callId = randomUUID();

      const created = ok(
        await h.call(protocol, M.createEntity, { entity: { type: EntityType.TEMPLATE, title: "From CI", content: { template: "v1" } }, commitMessage: "pushed by CI" }, key.secret, {
          "x-request-id": callId,
        }),
      );
      assert.equal(created.ownerId, principal(key.id));
      assert.equal(created.authorId, principal(key.id));
      assert.equal(created.visibility, Visibility.PRIVATE);
      assert.equal(created.callerPermission, Permission.ADMIN, "a key owns what it creates");

      const updated = ok(
        await h.call(protocol, M.updateEntity, { entity: { id: created.id, content: { template: "v2" }, etag: created.etag }, updateMask: { paths: ["content"] } }, key.secret),
      );
      assert.equal(updated.version, 2);
      assert.equal(updated.authorId, principal(key.id));
      const rolledBack = ok(await h.call(protocol, M.rollbackEntity, { entityId: created.id, version: 1, etag: updated.etag }, key.secret));
      assert.equal(rolledBack.version, 3);
      assert.equal(rolledBack.restoredFromVersion, 1);
      assert.equal(rolledBack.authorId, principal(key.id));

      // Revisions: every version by the key; the tenant's owner reads the same.
      const revisions = ok(await h.call(protocol, M.listEntityRevisions, { entityId: created.id }, owner.token)).revisions;
      assert.deepEqual(revisions.map((r) => [r.version, r.authorId, r.ownerId]), [3, 2, 1].map((v) => [v, principal(key.id), principal(key.id)]));
      const v2 = ok(await h.call(protocol, M.getEntity, { entityId: created.id, version: 2 }, owner.token));
      assert.equal(v2.authorId, principal(key.id));

      // Labels: the key sets one; Label and the label history show it.
      const label = ok(await h.call(protocol, M.setLabel, { entityId: created.id, label: "staging", version: 3, reason: "ci" }, key.secret));
      assert.equal(label.updaterId, principal(key.id));
      const listed = ok(await h.call(protocol, M.listLabels, { entityId: created.id }, owner.token)).labels;
      assert.equal(listed.find((l) => l.name === "staging")?.updaterId, principal(key.id));
      const [history] = ok(await h.call(protocol, M.listLabelHistory, { entityId: created.id }, owner.token)).events;
      assert.equal(history!.actorId, principal(key.id));

      // The event log: actor api_key with the key's id, the call's request id.
      const events = await h.events(t.tenantId, created.id);
      assert.deepEqual(events.map((e) => e.event_type), ["content.entity.created", "content.entity.updated", "content.entity.rolled_back", "content.label.moved"]);
      for (const e of events) assert.deepEqual([e.actor_type, e.actor_id], ["api_key", key.id], e.event_type);
      assert.equal(events[0]!.request_id, callId);

      // The owner filter takes the key's name.
      const owned = ok(await h.call(protocol, M.listEntities, { ownerId: principal(key.id) }, owner.token)).entities;
      assert.deepEqual(owned.map((e) => e.id), [created.id]);
      assert.deepEqual(ok(await h.call(protocol, M.listEntities, { ownerId: owner.id }, owner.token)).entities, []);
    });

    test("what a key owns, others see by the access rules: its private entity is its own, its admins' and its shares'", async () => {
      const t = await h.tenantWith(["admin", "editor"]);
      const [admin, editor] = t.users;
      const key = await h.newApiKey(admin!.token, "editor");
      const otherKey = await h.newApiKey(admin!.token, "editor");
      const priv = ok(await h.call(protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, title: "key's own" } }, key.secret));

      assert.deepEqual(failure(await h.call(protocol, M.getEntity, { entityId: priv.id }, otherKey.secret)), NOT_FOUND);
      assert.deepEqual(failure(await h.call(protocol, M.getEntity, { entityId: priv.id }, editor!.token)), NOT_FOUND);
      assert.equal(ok(await h.call(protocol, M.getEntity, { entityId: priv.id }, admin!.token)).callerPermission, Permission.ADMIN);

      // As its owner (admin on it) the key shares it; the share records the key as granter.
      const share = ok(await h.call(protocol, M.grantShare, { entityId: priv.id, share: { grantee: { case: "userId", value: editor!.id }, permission: Permission.EDIT } }, key.secret));
      assert.equal(share.granterId, principal(key.id));
      assert.equal(ok(await h.call(protocol, M.getEntity, { entityId: priv.id }, editor!.token)).callerPermission, Permission.EDIT);

      // A key creating with a request id: its retry gets the entity, another key's reuse is another request.
      const requestId = randomUUID();
      const entity = { type: EntityType.CONTEXT, title: "idempotent" };
      const first = ok(await h.call(protocol, M.createEntity, { entity, requestId }, key.secret));
      assert.equal(ok(await h.call(protocol, M.createEntity, { entity, requestId }, key.secret)).id, first.id);
      assert.deepEqual(failure(await h.call(protocol, M.createEntity, { entity, requestId }, otherKey.secret)), {
        code: "ALREADY_EXISTS",
        reason: "REQUEST_ID_REUSED",
      });

      // A revoked key's entities stay, still shown as the key's; admins keep admin on them.
      ok(await unaryCall(IdentityService, h.identity, "grpc", IdentityService.method.revokeApiKey, { apiKeyId: key.id }, { authorization: `Bearer ${admin!.token}` }));
      const kept = ok(await h.call(protocol, M.getEntity, { entityId: priv.id }, admin!.token));
      assert.equal(kept.ownerId, principal(key.id));
      ok(await h.call(protocol, M.updateEntity, { entity: { id: priv.id, title: "taken over" }, updateMask: { paths: ["title"] } }, admin!.token));
    });

    test("a viewer key writes nothing; an editor key edits only what editors may", async () => {
      const t = await h.tenantWith(["owner", "editor"]);
      const [owner, editor] = t.users;
      const viewerKey = await h.newApiKey(owner!.token, "viewer");
      const editorKey = await h.newApiKey(owner!.token, "editor");
      const open = ok(await h.call(protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, title: "team", visibility: Visibility.TENANT } }, editor!.token));
      const priv = ok(await h.call(protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, title: "mine" } }, editor!.token));
      const update = (id: string) => ({ entity: { id, title: "by key" }, updateMask: { paths: ["title"] } });

      assert.equal(ok(await h.call(protocol, M.getEntity, { entityId: open.id }, viewerKey.secret)).callerPermission, Permission.VIEW);
      assert.deepEqual(failure(await h.call(protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, title: "x" } }, viewerKey.secret)), DENIED);
      assert.deepEqual(failure(await h.call(protocol, M.updateEntity, update(open.id), viewerKey.secret)), DENIED);
      assert.deepEqual(failure(await h.call(protocol, M.rollbackEntity, { entityId: open.id, version: 1 }, viewerKey.secret)), DENIED);
      assert.deepEqual(failure(await h.call(protocol, M.setLabel, { entityId: open.id, label: "staging", version: 1 }, viewerKey.secret)), DENIED);
      assert.deepEqual(failure(await h.call(protocol, M.deleteEntity, { entityId: open.id }, viewerKey.secret)), DENIED);

      // Editor key: edit on tenant-visible entities (not admin: no delete, no shares), nothing on a user's private one.
      assert.equal(ok(await h.call(protocol, M.updateEntity, update(open.id), editorKey.secret)).authorId, principal(editorKey.id));
      assert.deepEqual(failure(await h.call(protocol, M.deleteEntity, { entityId: open.id }, editorKey.secret)), DENIED);
      assert.deepEqual(failure(await h.call(protocol, M.updateEntity, update(priv.id), editorKey.secret)), NOT_FOUND);
      // Protected labels and purge still need the admin role.
      assert.deepEqual(failure(await h.call(protocol, M.setLabel, { entityId: open.id, label: "production", version: 1 }, editorKey.secret)), {
        code: "PERMISSION_DENIED",
        reason: "LABEL_PROTECTED",
      });
      // The entity's owner is still the user who created it.
      assert.equal(ok(await h.call(protocol, M.getEntity, { entityId: open.id }, editor!.token)).ownerId, editor!.id);
    });

    test("per-user things are refused to a key with a clear error: favorites, its own sessions, password and linked identities", async () => {
      const t = await h.tenantWith(["admin"]);
      const admin = t.users[0]!;
      const key = await h.newApiKey(admin.token, "admin");
      const open = ok(await h.call(protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, title: "fav", visibility: Visibility.TENANT } }, admin.token));
      const refusals: Outcome<unknown>[] = [
        await h.call(protocol, M.addFavorite, { entityId: open.id }, key.secret),
        await h.call(protocol, M.removeFavorite, { entityId: open.id }, key.secret),
        await h.call(protocol, M.listFavorites, {}, key.secret),
        await h.call(protocol, M.listEntities, { favoritesOnly: true }, key.secret),
      ];
      for (const outcome of refusals) {
        assert.deepEqual(failure(outcome), DENIED);
        assert.equal(metadataOf(outcome).required, "user");
      }
      const bearer = { authorization: `Bearer ${key.secret}` };
      const sessions = await unaryCall(AuthService, h.identity, protocol, AuthService.method.listSessions, {}, bearer);
      assert.equal(failure(sessions).code, "FAILED_PRECONDITION");
      const password = await unaryCall(AuthService, h.identity, protocol, AuthService.method.changePassword, { currentPassword: "x", newPassword: "a long new passphrase 1" }, bearer);
      assert.deepEqual(failure(password), DENIED);
      const linked = await unaryCall(IdentityService, h.identity, protocol, IdentityService.method.listLinkedIdentities, {}, bearer);
      assert.equal(failure(linked).code, "FAILED_PRECONDITION");
      // Naming a user, an admin key may do what an admin may.
      ok(await unaryCall(AuthService, h.identity, protocol, AuthService.method.listSessions, { userId: admin.id }, bearer));
    });

    test("cross-tenant: another tenant's key finds nothing, whatever its role", async () => {
      const a = await h.tenantWith(["admin"]);
      const b = await h.tenantWith(["admin"]);
      const keyA = await h.newApiKey(a.users[0]!.token, "editor");
      const keyB = await h.newApiKey(b.users[0]!.token, "admin");
      const entity = ok(await h.call(protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, title: "A's", visibility: Visibility.TENANT } }, keyA.secret));
      assert.deepEqual(failure(await h.call(protocol, M.getEntity, { entityId: entity.id }, keyB.secret)), NOT_FOUND);
      assert.deepEqual(failure(await h.call(protocol, M.updateEntity, { entity: { id: entity.id, title: "B" }, updateMask: { paths: ["title"] } }, keyB.secret)), NOT_FOUND);
      assert.deepEqual(failure(await h.call(protocol, M.rollbackEntity, { entityId: entity.id, version: 1 }, keyB.secret)), NOT_FOUND);
      assert.deepEqual(ok(await h.call(protocol, M.listEntities, { ownerId: principal(keyA.id) }, keyB.secret)).entities, []);
      // B's key creates in B: an entity of B that A's key cannot see.
      const inB = ok(await h.call(protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, title: "B's", visibility: Visibility.TENANT } }, keyB.secret));
      assert.equal(inB.tenantId, b.tenantId);
      assert.deepEqual(failure(await h.call(protocol, M.getEntity, { entityId: inB.id }, keyA.secret)), NOT_FOUND);
    });
  });
}
