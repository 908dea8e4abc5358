import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { CREDENTIAL_CACHE_TTL_MS } from "@promptcraft/platform";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { EntityType } from "@promptcraft/proto/promptcraft/content/v1/resources_pb";
import { IdentityService } from "@promptcraft/proto/promptcraft/identity/v1/identity_service_pb";
import { Role } from "@promptcraft/proto/promptcraft/identity/v1/resources_pb";
import { ContentHarness, DENIED, failure, ok, PROTOCOLS, type Outcome } from "./content-e2e-helpers.js";
import { unaryCall } from "./rpc-outcomes.js";

/**
 * A role change holds within the credential bound (issue 9, item 3): every service takes the
 * caller's role from the user's row, read with the tenant/user/session status and cached 5 s, not
 * from the access token's `role` claim (valid up to 15 minutes). An editor demoted to viewer can no
 * longer create entities with the token they already hold, and can again once promoted back; a
 * viewer promoted to admin may call identity's admin methods with their old token, and not once
 * demoted. Over gRPC and Connect, against identity and content started as in production.
 */

const h = new ContentHarness();
beforeAll(() => h.start());
afterAll(() => h.close());

/** The bound: the 5 s cache plus one second. */
const BOUND_MS = CREDENTIAL_CACHE_TTL_MS + 1000;

/** Repeats `call` until its outcome satisfies `done` or the bound has passed since `since`; returns the last outcome. */
async function pollUntil<T>(since: number, call: () => Promise<Outcome<T>>, done: (o: Outcome<T>) => boolean): Promise<Outcome<T>> {
  for (;;) {
    const outcome = await call();
    if (done(outcome) || Date.now() - since > BOUND_MS) return outcome;
    await new Promise((r) => setTimeout(r, 100));
  }
}

const PROTO_ROLE = { viewer: Role.VIEWER, editor: Role.EDITOR, admin: Role.ADMIN } as const;

/** Sets a user's role through identity's UpdateUser, as an admin; returns when it is committed. */
async function setRole(adminToken: string, userId: string, role: keyof typeof PROTO_ROLE): Promise<number> {
  ok(
    await unaryCall(IdentityService, h.identity, "grpc", IdentityService.method.updateUser, {
      user: { id: userId, role: PROTO_ROLE[role] },
      updateMask: { paths: ["role"] },
    }, { authorization: `Bearer ${adminToken}` }),
  );
  return Date.now();
}

describe("role changes", { concurrent: true }, () => {
  for (const protocol of PROTOCOLS) {
    test(`${protocol}: content: a demoted editor's token stops writing within the bound, and writes again once promoted`, async () => {
      const t = await h.tenantWith(["admin", "editor"]);
      const [admin, editor] = t.users;
      const create = () => h.call(protocol, ContentService.method.createEntity, { entity: { type: EntityType.CONTEXT, title: "by role" } }, editor!.token);
      const mine = ok(await create());

      const demoted = await setRole(admin!.token, editor!.id, "viewer");
      assert.deepEqual(failure(await pollUntil(demoted, create, (o) => !o.ok)), DENIED, "the old token cannot create once demoted");
      // Their own entity is capped at view for a viewer: no update either, and reads still work.
      const update = { entity: { id: mine.id, title: "changed" }, updateMask: { paths: ["title"] } };
      assert.deepEqual(failure(await h.call(protocol, ContentService.method.updateEntity, update, editor!.token)), DENIED);
      assert.equal(ok(await h.call(protocol, ContentService.method.getEntity, { entityId: mine.id }, editor!.token)).id, mine.id);

      const promoted = await setRole(admin!.token, editor!.id, "editor");
      ok(await pollUntil(promoted, create, (o) => o.ok));
      ok(await h.call(protocol, ContentService.method.updateEntity, update, editor!.token));
    });

    test(`${protocol}: identity: a viewer promoted to admin uses admin methods with the old token within the bound, and not once demoted`, async () => {
      const t = await h.tenantWith(["admin", "viewer"]);
      const [admin, viewer] = t.users;
      const listKeys = () => unaryCall(IdentityService, h.identity, protocol, IdentityService.method.listApiKeys, {}, { authorization: `Bearer ${viewer!.token}` });
      assert.deepEqual(failure(await listKeys()), { code: "PERMISSION_DENIED", reason: "PERMISSION_INSUFFICIENT" });

      const promoted = await setRole(admin!.token, viewer!.id, "admin");
      ok(await pollUntil(promoted, listKeys, (o) => o.ok));

      const demoted = await setRole(admin!.token, viewer!.id, "viewer");
      assert.deepEqual(failure(await pollUntil(demoted, listKeys, (o) => !o.ok)), { code: "PERMISSION_DENIED", reason: "PERMISSION_INSUFFICIENT" });
    });
  }
});
