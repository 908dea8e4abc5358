import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { addVersion, createEntity, setLabel } from "@promptcraft/content/fixtures";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { GraphService } from "@promptcraft/proto/promptcraft/graph/v1/graph_service_pb";
import { RelationshipType } from "@promptcraft/proto/promptcraft/graph/v1/resources_pb";
import { failure, GraphHarness, ok, PROTOCOLS } from "./graph-e2e-helpers.js";

/**
 * Composition across services: content's RenderTemplate renders `{{> ref}}` partials through
 * graph's ResolveDependencies (the caller's credentials), recursively, with a receipt of every
 * (entity, version) used; unresolvable partials fail naming the ref.
 */

const h = new GraphHarness();
beforeAll(() => h.start({ withContent: true }));
afterAll(() => h.close());

const C = ContentService.method;
const G = GraphService.method;
const UNRESOLVED = { code: "FAILED_PRECONDITION", reason: "PARTIAL_UNRESOLVED" };

for (const protocol of PROTOCOLS) {
  describe(`composition over ${protocol}`, () => {
    test("partials by name and id, pinned then on a label, nested, with the receipt; missing relationships and invisible partials fail by name", async () => {
      const t = await h.tenantWith(["editor", "editor"]);
      const [editor, colleague] = t.users;
      const suffix = randomUUID().slice(0, 8);
      const tone = `tone-${suffix}`;
      const signature = `signature-${suffix}`;
      const toneId = (await createEntity(h.db, t.tenantId, editor!.id, { name: tone, visibility: "tenant", content: { text: "Be {{mood}}. {{> " + signature + "}}", variables: [{ name: "mood", default: "kind" }] } })).id;
      const signatureId = (await createEntity(h.db, t.tenantId, editor!.id, { name: signature, visibility: "tenant", content: { text: "-- {{team}}" } })).id;
      const templateId = (await createEntity(h.db, t.tenantId, editor!.id, { entityType: "template", visibility: "tenant", content: { template: `Hi {{name}}. {{> ${tone} }} Bye` } })).id;
      const render = (who = editor!) => h.callContent(protocol, C.renderTemplate, { entityId: templateId, variables: { name: "Ann", team: "Support" } }, who.token);

      const missing = await render();
      assert.deepEqual(failure(missing), UNRESOLVED);
      assert.equal(missing.ok ? "" : missing.metadata.partial, tone);
      const link = async (source: string, target: string, pin?: { case: "targetVersion"; value: number } | { case: "targetLabel"; value: string }) =>
        ok(await h.call(protocol, G.createRelationship, { relationship: { sourceEntityId: source, targetEntityId: target, type: RelationshipType.DEPENDS_ON, ...(pin ? { targetPin: pin } : {}) } }, editor!.token));
      const onTone = await link(templateId, toneId, { case: "targetVersion", value: 1 });
      assert.deepEqual(failure(await render()), UNRESOLVED, "the tone's own partial has no relationship yet");
      await link(toneId, signatureId);

      const first = ok(await render());
      assert.equal(first.text, "Hi Ann. Be kind. -- Support Bye", "same variables all the way down; the partial's declared default applies");
      assert.deepEqual(first.receipt.map((r) => [r.entityId, r.name, r.version]), [
        [templateId, first.name, 1],
        [toneId, tone, 1],
        [signatureId, signature, 1],
      ]);

      await addVersion(h.db, t.tenantId, toneId, editor!.id, { visibility: "tenant", content: { text: "Be {{mood}}!! {{> " + signature + "}}", variables: [{ name: "mood", default: "kind" }] } });
      assert.equal(ok(await render()).text, "Hi Ann. Be kind. -- Support Bye", "pinned to version 1");
      await setLabel(h.db, t.tenantId, toneId, "production", 2, editor!.id);
      ok(await h.call(protocol, G.updateRelationship, { relationship: { id: onTone.id, targetPin: { case: "targetLabel", value: "production" } }, updateMask: { paths: ["target_label"] } }, editor!.token));
      const floating = ok(await render());
      assert.equal(floating.text, "Hi Ann. Be kind!! -- Support Bye");
      assert.deepEqual(floating.receipt.map((r) => r.version), [1, 2, 1]);

      // By id, and a partial the caller may not view.
      const secret = (await createEntity(h.db, t.tenantId, editor!.id, { visibility: "private", content: { text: "secret" } })).id;
      const byId = (await createEntity(h.db, t.tenantId, colleague!.id, { entityType: "template", visibility: "tenant", content: { template: `[{{> ${signatureId}}}]` } })).id;
      await link(byId, signatureId);
      assert.equal(ok(await h.callContent(protocol, C.renderTemplate, { entityId: byId, variables: { team: "Ops" } }, colleague!.token)).text, "[-- Ops]");
      const leaky = (await createEntity(h.db, t.tenantId, editor!.id, { entityType: "template", visibility: "tenant", content: { template: `{{> ${secret}}}` } })).id;
      await link(leaky, secret);
      assert.equal(ok(await h.callContent(protocol, C.renderTemplate, { entityId: leaky }, editor!.token)).text, "secret");
      const hidden = await h.callContent(protocol, C.renderTemplate, { entityId: leaky }, colleague!.token);
      assert.deepEqual(failure(hidden), UNRESOLVED, "a partial the caller may not view fails, naming only what they wrote");
      assert.equal(hidden.ok ? "" : hidden.metadata.partial, secret);
    });
  });
}
