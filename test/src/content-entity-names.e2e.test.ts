import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { EntityType, Visibility } from "@promptcraft/proto/promptcraft/content/v1/resources_pb";
import { badFields, ContentHarness, failure, NOT_FOUND, ok, PROTOCOLS, type Outcome } from "./content-e2e-helpers.js";

/**
 * Entity names over gRPC and Connect (issue 10.1): create with a name or one derived from the
 * title, read and render by name with label / version / as-of selectors, rename (history, event,
 * as-of resolves the old holder), list by name and prefix, names released by deletion, tenants
 * kept apart, and bad names refused naming the field.
 */

const h = new ContentHarness();
beforeAll(() => h.start());
afterAll(() => h.close());

const M = ContentService.method;
const ALREADY_EXISTS = { code: "ALREADY_EXISTS", reason: "RESOURCE_ALREADY_EXISTS" };

/** Lets the clock move on, so that "just before" a change is a distinct instant. */
const tick = () => new Promise((r) => setTimeout(r, 5));

function metadataOf<O>(outcome: Outcome<O>): Record<string, string> {
  assert.ok(!outcome.ok, "expected a failure");
  return outcome.metadata;
}

for (const protocol of PROTOCOLS) {
  describe(`entity names over ${protocol}`, () => {
    test("create with a name or one derived from the title; GetEntity by name with label, version, as-of", async () => {
      const t = await h.tenantWith(["admin"]);
      const admin = t.users[0]!;
      const created = ok(
        await h.call(protocol, M.createEntity, { entity: { type: EntityType.TEMPLATE, name: "support-reply", title: "Support reply", content: { template: "Hi {{who}}" } } }, admin.token),
      );
      assert.equal(created.name, "support-reply");
      const events = await h.events(t.tenantId, created.id);
      assert.equal(events[0]!.payload.name, "support-reply", "the created event names it");
      const afterV1 = new Date();
      await tick();
      ok(await h.call(protocol, M.updateEntity, { entity: { id: created.id, content: { template: "Hello {{who}}" } }, updateMask: { paths: ["content"] } }, admin.token));
      ok(await h.call(protocol, M.setLabel, { entityId: created.id, label: "production", version: 1 }, admin.token));

      const get = async (req: object) => ok(await h.call(protocol, M.getEntity, { name: "support-reply", ...req }, admin.token));
      const production = await get({ label: "production" });
      assert.deepEqual([production.id, production.version, production.name], [created.id, 1, "support-reply"]);
      assert.deepEqual(production.content, { template: "Hi {{who}}" });
      assert.equal((await get({})).version, 2);
      assert.equal((await get({ version: 2 })).version, 2);
      assert.equal((await get({ label: "latest" })).version, 2);
      assert.equal((await get({ asOfTime: timestampFromDate(afterV1) })).version, 1);

      // Derived from the title, made unique in the tenant.
      const derived = ok(await h.call(protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, title: "Support Reply!" } }, admin.token));
      assert.equal(derived.name, "support-reply-2");
      const accented = ok(await h.call(protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, title: "Crème brûlée" } }, admin.token));
      assert.equal(accented.name, "creme-brulee");

      // An explicit name another live entity has.
      const taken = await h.call(protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, title: "x", name: "support-reply" } }, admin.token);
      assert.deepEqual(failure(taken), ALREADY_EXISTS);
      assert.equal(metadataOf(taken).field, "entity.name");

      // A retry (same request_id) with the same name returns the first entity; with another name it is another request.
      const requestId = randomUUID();
      const retried = { entity: { type: EntityType.CONTEXT, title: "Retried", name: "retried" }, requestId };
      const firstCall = ok(await h.call(protocol, M.createEntity, retried, admin.token));
      assert.equal(ok(await h.call(protocol, M.createEntity, retried, admin.token)).id, firstCall.id);
      assert.equal(ok(await h.call(protocol, M.createEntity, { ...retried, entity: { ...retried.entity, name: "" } }, admin.token)).id, firstCall.id, "no name: any");
      assert.deepEqual(failure(await h.call(protocol, M.createEntity, { ...retried, entity: { ...retried.entity, name: "other" } }, admin.token)), {
        code: "ALREADY_EXISTS",
        reason: "REQUEST_ID_REUSED",
      });

      const missing = await h.call(protocol, M.getEntity, { name: "nobody" }, admin.token);
      assert.deepEqual(failure(missing), NOT_FOUND);
      assert.equal(metadataOf(missing).name, "nobody");
      assert.deepEqual(failure(await h.call(protocol, M.getEntity, { name: "support-reply", label: "staging" }, admin.token)), NOT_FOUND);
    });

    test("rename through UpdateEntity: no new version, a new etag, an event, the history; as-of resolves the old holder", async () => {
      const t = await h.tenantWith(["editor"]);
      const editor = t.users[0]!;
      const create = async (name: string) => ok(await h.call(protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, title: name, name } }, editor.token));
      const a = await create("alpha");
      const b = await create("beta");
      await tick();
      const beforeRename = new Date();
      await tick();
      const rename = (id: string, name: string, etag = "") =>
        h.call(protocol, M.updateEntity, { entity: { id, name, etag }, updateMask: { paths: ["name"] } }, editor.token);
      const renamed = ok(await rename(a.id, "gamma", a.etag));
      assert.deepEqual([renamed.name, renamed.version, renamed.currentVersion], ["gamma", 1, 1], "a rename is not a version");
      assert.notEqual(renamed.etag, a.etag);
      assert.deepEqual(failure(await rename(a.id, "delta", a.etag)), { code: "ABORTED", reason: "ETAG_MISMATCH" }, "etag rules as for any update");
      const event = (await h.events(t.tenantId, a.id)).find((e) => e.event_type === "content.entity.renamed");
      assert.deepEqual(event?.payload, { name: "gamma", previous_name: "alpha" });
      assert.equal(event?.actor_id, editor.id);

      const conflict = await rename(b.id, "gamma");
      assert.deepEqual(failure(conflict), ALREADY_EXISTS);
      assert.equal(metadataOf(conflict).field, "entity.name");
      ok(await rename(b.id, "alpha"));

      const get = async (req: object) => ok(await h.call(protocol, M.getEntity, req, editor.token));
      assert.equal((await get({ name: "alpha" })).id, b.id, "now: the new holder");
      assert.equal((await get({ name: "alpha", asOfTime: timestampFromDate(beforeRename) })).id, a.id, "then: the entity that held it");
      assert.equal((await get({ name: "gamma" })).id, a.id);
      const notYet = await h.call(protocol, M.getEntity, { name: "gamma", asOfTime: timestampFromDate(beforeRename) }, editor.token);
      assert.deepEqual(failure(notYet), NOT_FOUND);
      assert.ok(metadataOf(notYet).as_of_time);

      // `*` replaces the versioned fields, never the name.
      const star = ok(await h.call(protocol, M.updateEntity, { entity: { id: a.id, title: "Gamma", visibility: Visibility.PRIVATE, status: 1 }, updateMask: { paths: ["*"] } }, editor.token));
      assert.equal(star.name, "gamma");
      // Name and fields together: one call, one version.
      const both = ok(await h.call(protocol, M.updateEntity, { entity: { id: a.id, name: "epsilon", title: "Epsilon" }, updateMask: { paths: ["name", "title"] } }, editor.token));
      assert.deepEqual([both.name, both.title, both.version], ["epsilon", "Epsilon", 3]);

      const history = ok(await h.call(protocol, M.listEntityNameHistory, { entityId: a.id }, editor.token));
      assert.deepEqual(history.names.map((n) => [n.name, n.endTime === undefined]), [["epsilon", true], ["gamma", false], ["alpha", false]]);
      assert.equal(history.names[0]!.setterId, editor.id);
      assert.deepEqual(history.names[1]!.endTime, history.names[0]!.startTime);
      const paged = ok(await h.call(protocol, M.listEntityNameHistory, { entityId: a.id, pageSize: 2 }, editor.token));
      assert.equal(paged.names.length, 2);
      const rest = ok(await h.call(protocol, M.listEntityNameHistory, { entityId: a.id, pageSize: 2, pageToken: paged.nextPageToken }, editor.token));
      assert.deepEqual(rest.names.map((n) => n.name), ["alpha"]);
      assert.equal(rest.nextPageToken, "");
    });

    test("concurrent claims of one name: exactly one entity gets it, the others ALREADY_EXISTS (never INTERNAL)", async () => {
      const t = await h.tenantWith(["editor"]);
      const editor = t.users[0]!;
      const ids = await Promise.all(
        Array.from({ length: 4 }, async (_, i) => ok(await h.call(protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, title: `racer ${i}` } }, editor.token)).id),
      );
      const claims = await Promise.all([
        ...ids.map((id) => h.call(protocol, M.updateEntity, { entity: { id, name: "winner" }, updateMask: { paths: ["name"] } }, editor.token)),
        h.call(protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, title: "x", name: "winner" } }, editor.token),
      ]);
      assert.equal(claims.filter((c) => c.ok).length, 1, JSON.stringify(claims.map(failure)));
      for (const c of claims.filter((c) => !c.ok)) {
        assert.deepEqual(failure(c), ALREADY_EXISTS);
        assert.equal(metadataOf(c).field, "entity.name");
      }
      const holder = ok(await h.call(protocol, M.listEntities, { name: "winner" }, editor.token)).entities;
      assert.equal(holder.length, 1);
    });

    test("RenderTemplate by name and label", async () => {
      const t = await h.tenantWith(["admin"]);
      const admin = t.users[0]!;
      const tpl = ok(await h.call(protocol, M.createEntity, { entity: { type: EntityType.TEMPLATE, title: "Greeting", content: { template: "Hi {{who}}" } } }, admin.token));
      assert.equal(tpl.name, "greeting");
      ok(await h.call(protocol, M.setLabel, { entityId: tpl.id, label: "production", version: 1 }, admin.token));
      ok(await h.call(protocol, M.updateEntity, { entity: { id: tpl.id, content: { template: "Hello {{who}}" } }, updateMask: { paths: ["content"] } }, admin.token));
      const render = async (req: object) => ok(await h.call(protocol, M.renderTemplate, { name: "greeting", variables: { who: "Ada" }, ...req }, admin.token));
      const served = await render({ label: "production" });
      assert.deepEqual([served.text, served.entityId, served.name, served.version], ["Hi Ada", tpl.id, "greeting", 1]);
      assert.equal((await render({})).text, "Hello Ada");
      assert.equal((await render({ version: 2 })).text, "Hello Ada");
      assert.deepEqual(failure(await h.call(protocol, M.renderTemplate, { name: "nothing-here" }, admin.token)), NOT_FOUND);
    });

    test("ListEntities by name and name prefix, ordered by name", async () => {
      const t = await h.tenantWith(["editor"]);
      const editor = t.users[0]!;
      for (const name of ["billing-refund", "billing-apology", "support-reply"]) {
        ok(await h.call(protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, title: name, name } }, editor.token));
      }
      const list = async (req: object) => ok(await h.call(protocol, M.listEntities, req, editor.token)).entities.map((e) => e.name);
      assert.deepEqual(await list({ name: "support-reply" }), ["support-reply"]);
      assert.deepEqual(await list({ name: "support" }), [], "name is exact");
      assert.deepEqual(await list({ namePrefix: "billing-", orderBy: "name" }), ["billing-apology", "billing-refund"]);
      assert.deepEqual(await list({ orderBy: "name desc" }), ["support-reply", "billing-refund", "billing-apology"]);
      const first = ok(await h.call(protocol, M.listEntities, { orderBy: "name", pageSize: 2 }, editor.token));
      const second = ok(await h.call(protocol, M.listEntities, { orderBy: "name", pageSize: 2, pageToken: first.nextPageToken }, editor.token));
      assert.deepEqual([...first.entities, ...second.entities].map((e) => e.name), ["billing-apology", "billing-refund", "support-reply"]);
    });

    test("a deleted entity releases its name; undelete when it was taken fails naming `name`, or takes a new one", async () => {
      const t = await h.tenantWith(["admin"]);
      const admin = t.users[0]!;
      const old = ok(await h.call(protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, title: "x", name: "faq" } }, admin.token));
      await tick();
      const whileOld = new Date();
      const deleted = ok(await h.call(protocol, M.deleteEntity, { entityId: old.id }, admin.token));
      assert.deepEqual(failure(await h.call(protocol, M.getEntity, { name: "faq" }, admin.token)), NOT_FOUND, "a deleted entity holds no name");
      const asOf = ok(await h.call(protocol, M.getEntity, { name: "faq", asOfTime: timestampFromDate(whileOld) }, admin.token));
      assert.equal(asOf.id, old.id, "as of a time it held the name");
      assert.ok(asOf.deleteTime);
      const successor = ok(await h.call(protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, title: "y", name: "faq" } }, admin.token));

      const refused = await h.call(protocol, M.undeleteEntity, { entityId: old.id, etag: deleted.etag }, admin.token);
      assert.deepEqual(failure(refused), ALREADY_EXISTS);
      assert.equal(metadataOf(refused).field, "name");
      const restored = ok(await h.call(protocol, M.undeleteEntity, { entityId: old.id, etag: deleted.etag, name: "faq-old" }, admin.token));
      assert.equal(restored.name, "faq-old");
      assert.equal(restored.deleteTime, undefined);
      assert.equal(ok(await h.call(protocol, M.getEntity, { name: "faq-old" }, admin.token)).id, old.id);
      assert.equal(ok(await h.call(protocol, M.getEntity, { name: "faq" }, admin.token)).id, successor.id);
      const types = (await h.events(t.tenantId, old.id)).map((e) => e.event_type);
      assert.ok(types.includes("content.entity.renamed") && types.includes("content.entity.undeleted"), types.join(","));
      const history = ok(await h.call(protocol, M.listEntityNameHistory, { entityId: old.id }, admin.token));
      assert.deepEqual(history.names.map((n) => [n.name, n.endTime === undefined]), [["faq-old", true], ["faq", false]]);
    });

    test("names are per tenant: the same name in two tenants, each caller reads only its own; hidden is not found", async () => {
      const one = await h.tenantWith(["editor", "viewer"]);
      const two = await h.tenantWith(["editor"]);
      const [editor1, viewer1] = one.users;
      const editor2 = two.users[0]!;
      const mine = ok(await h.call(protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, title: "x", name: "shared" } }, editor1!.token));
      const theirs = ok(await h.call(protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, title: "x", name: "shared" } }, editor2.token));
      ok(await h.call(protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, title: "x", name: "only-in-one", visibility: Visibility.TENANT } }, editor1!.token));
      assert.equal(ok(await h.call(protocol, M.getEntity, { name: "shared" }, editor1!.token)).id, mine.id);
      assert.equal(ok(await h.call(protocol, M.getEntity, { name: "shared" }, editor2.token)).id, theirs.id);
      assert.deepEqual(failure(await h.call(protocol, M.getEntity, { name: "only-in-one" }, editor2.token)), NOT_FOUND);
      assert.deepEqual(ok(await h.call(protocol, M.listEntities, { name: "only-in-one" }, editor2.token)).entities, []);
      assert.deepEqual(ok(await h.call(protocol, M.listEntities, { namePrefix: "s" }, editor2.token)).entities.map((e) => e.id), [theirs.id]);
      // A private entity of another user: the same NOT_FOUND as a name nobody has.
      const hidden = await h.call(protocol, M.getEntity, { name: "shared" }, viewer1!.token);
      const nobody = await h.call(protocol, M.getEntity, { name: "no-such-name" }, viewer1!.token);
      assert.deepEqual(failure(hidden), NOT_FOUND);
      assert.deepEqual(Object.keys(metadataOf(hidden)).sort(), Object.keys(metadataOf(nobody)).sort());
      assert.equal(ok(await h.call(protocol, M.getEntity, { name: "only-in-one" }, viewer1!.token)).name, "only-in-one");
    });

    test("bad names and addressing: INVALID_ARGUMENT naming the field", async () => {
      const t = await h.tenantWith(["admin"]);
      const admin = t.users[0]!;
      const e = ok(await h.call(protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, title: "x" } }, admin.token));
      const bad = async (method: (typeof M)[keyof typeof M], request: object) => {
        const outcome = await h.call(protocol, method as typeof M.getEntity, request, admin.token);
        assert.equal(failure(outcome).code, "INVALID_ARGUMENT", JSON.stringify(request));
        return badFields(outcome);
      };
      assert.deepEqual(await bad(M.getEntity, {}), ["entity_id"]);
      assert.deepEqual(await bad(M.getEntity, { entityId: e.id, name: "x" }), ["name"]);
      for (const name of ["Support-Reply", "-x", "x-", "a_b", "x".repeat(65), "é"]) assert.deepEqual(await bad(M.getEntity, { name }), ["name"], name);
      assert.deepEqual(await bad(M.renderTemplate, {}), ["entity_id"]);
      assert.deepEqual(await bad(M.renderTemplate, { entityId: e.id, name: "x" }), ["name"]);
      assert.deepEqual(await bad(M.createEntity, { entity: { type: EntityType.CONTEXT, title: "x", name: "Not A Slug" } }), ["entity.name"]);
      assert.deepEqual(await bad(M.updateEntity, { entity: { id: e.id }, updateMask: { paths: ["name"] } }), ["entity.name"]);
      assert.deepEqual(await bad(M.updateEntity, { entity: { id: e.id, name: "UPPER" }, updateMask: { paths: ["name"] } }), ["entity.name"]);
      assert.deepEqual(await bad(M.listEntities, { name: "x y" }), ["name"]);
      assert.deepEqual(await bad(M.listEntities, { namePrefix: "A" }), ["name_prefix"]);
      assert.deepEqual(await bad(M.listEntities, { orderBy: "name sideways" }), ["order_by"]);
      assert.deepEqual(await bad(M.undeleteEntity, { entityId: e.id, name: "" }), ["name"]);
    });
  });
}
