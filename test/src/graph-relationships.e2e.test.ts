import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { GraphService } from "@promptcraft/proto/promptcraft/graph/v1/graph_service_pb";
import { Direction, RelationshipType } from "@promptcraft/proto/promptcraft/graph/v1/resources_pb";
import { addVersion, setLabel } from "@promptcraft/content/fixtures";
import { newApiKey } from "./content-e2e-helpers.js";
import { badFields, EMBEDDED, failure, GraphHarness, ok, PROTOCOLS } from "./graph-e2e-helpers.js";

/** GraphService relationships over gRPC and Connect: CRUD, idempotency, pins, cycles (also concurrent), limits, access, tenancy, history. */

const h = new GraphHarness();
beforeAll(() => h.start());
afterAll(() => h.close());

const M = GraphService.method;
const DEPENDS = RelationshipType.DEPENDS_ON;
const PART_OF = RelationshipType.PART_OF;
const NOT_FOUND = { code: "NOT_FOUND", reason: "RESOURCE_NOT_FOUND" };
const CYCLE = { code: "FAILED_PRECONDITION", reason: "RELATIONSHIP_CYCLE" };

for (const protocol of PROTOCOLS) {
  describe(`relationships over ${protocol}`, () => {
    const create = (token: string, relationship: Record<string, unknown>, requestId?: string) =>
      h.call(protocol, M.createRelationship, { relationship, ...(requestId ? { requestId } : {}) }, token);

    test("create, get, list (paged, by direction and type), update with mask and etag, delete; events; history", async () => {
      const t = await h.tenantWith(["editor"]);
      const editor = t.users[0]!;
      const [a, b, c] = await h.entities(t.tenantId, editor.id, 3);
      await setLabel(h.db, t.tenantId, c!, "production", 1, editor.id);
      const ab = ok(await create(editor.token, { sourceEntityId: a, targetEntityId: b, type: DEPENDS, metadata: { why: "greeting" } }));
      assert.equal(ab.sourceEntityId, a);
      assert.equal(ab.strength, 1, "strength defaults to 1");
      assert.equal(ab.targetPin.case, undefined, "no pin: latest");
      assert.equal(ab.creatorId, editor.id);
      assert.equal(ab.etag, "1");
      assert.deepEqual(ab.metadata, { why: "greeting" });
      const ac = ok(await create(editor.token, { sourceEntityId: a, targetEntityId: c, type: PART_OF, strength: 0.4, targetPin: { case: "targetLabel", value: "production" } }));
      assert.deepEqual(ac.targetPin, { case: "targetLabel", value: "production" });
      const cb = ok(await create(editor.token, { sourceEntityId: c, targetEntityId: b, type: DEPENDS, targetPin: { case: "targetVersion", value: 1 } }));
      assert.deepEqual(cb.targetPin, { case: "targetVersion", value: 1 });

      assert.deepEqual(ok(await h.call(protocol, M.getRelationship, { relationshipId: ab.id }, editor.token)).id, ab.id);
      const out = ok(await h.call(protocol, M.listRelationships, { entityId: a }, editor.token));
      assert.deepEqual(out.relationships.map((r) => r.id), [ac.id, ab.id], "outgoing by default, newest first");
      const first = ok(await h.call(protocol, M.listRelationships, { entityId: a, pageSize: 1 }, editor.token));
      assert.deepEqual(first.relationships.map((r) => r.id), [ac.id]);
      const second = ok(await h.call(protocol, M.listRelationships, { entityId: a, pageSize: 1, pageToken: first.nextPageToken }, editor.token));
      assert.deepEqual(second.relationships.map((r) => r.id), [ab.id]);
      assert.equal(second.nextPageToken, "");
      const incoming = ok(await h.call(protocol, M.listRelationships, { entityId: b, direction: Direction.INCOMING }, editor.token));
      assert.deepEqual(incoming.relationships.map((r) => r.id), [cb.id, ab.id]);
      const both = ok(await h.call(protocol, M.listRelationships, { entityId: c, direction: Direction.BOTH, types: [PART_OF] }, editor.token));
      assert.deepEqual(both.relationships.map((r) => r.id), [ac.id]);
      const strong = ok(await h.call(protocol, M.listRelationships, { entityId: a, minStrength: 0.5 }, editor.token));
      assert.deepEqual(strong.relationships.map((r) => r.id), [ab.id]);
      assert.deepEqual(badFields(await h.call(protocol, M.listRelationships, { entityId: a, pageToken: first.nextPageToken, minStrength: 0.2 }, editor.token)), ["page_token"]);

      const updated = ok(
        await h.call(protocol, M.updateRelationship, { relationship: { id: ab.id, etag: ab.etag, strength: 0.7, targetPin: { case: "targetVersion", value: 1 } }, updateMask: { paths: ["strength", "target_version"] } }, editor.token),
      );
      assert.equal(updated.strength, 0.7);
      assert.deepEqual(updated.targetPin, { case: "targetVersion", value: 1 });
      assert.deepEqual(updated.metadata, { why: "greeting" }, "metadata was not in the mask");
      assert.equal(updated.etag, "2");
      const stale = await h.call(protocol, M.updateRelationship, { relationship: { id: ab.id, etag: ab.etag, strength: 0.1 }, updateMask: { paths: ["strength"] } }, editor.token);
      assert.deepEqual(failure(stale), { code: "ABORTED", reason: "ETAG_MISMATCH" });
      const unpinned = ok(await h.call(protocol, M.updateRelationship, { relationship: { id: ab.id }, updateMask: { paths: ["target_version", "target_label"] } }, editor.token));
      assert.equal(unpinned.targetPin.case, undefined, "naming the pin without a value: latest");
      assert.deepEqual(badFields(await h.call(protocol, M.updateRelationship, { relationship: { id: ab.id, targetPin: { case: "targetVersion", value: 9 } }, updateMask: { paths: ["target_version"] } }, editor.token)), [
        "relationship.target_version",
      ]);
      assert.deepEqual(badFields(await h.call(protocol, M.updateRelationship, { relationship: { id: ab.id }, updateMask: { paths: ["source_entity_id"] } }, editor.token)), ["update_mask"]);

      assert.deepEqual(failure(await h.call(protocol, M.deleteRelationship, { relationshipId: ab.id, etag: "1" }, editor.token)), { code: "ABORTED", reason: "ETAG_MISMATCH" });
      ok(await h.call(protocol, M.deleteRelationship, { relationshipId: ab.id, etag: unpinned.etag }, editor.token));
      assert.deepEqual(failure(await h.call(protocol, M.getRelationship, { relationshipId: ab.id }, editor.token)), NOT_FOUND, "hard delete: gone");
      assert.deepEqual(failure(await h.call(protocol, M.deleteRelationship, { relationshipId: ab.id }, editor.token)), NOT_FOUND);

      const { rows: events } = await h.db.raw<{ rows: { event_type: string; aggregate_version: string }[] }>(
        "select event_type, aggregate_version::text as aggregate_version from event where tenant_id = ? and aggregate_id = ? order by id",
        [t.tenantId, ab.id],
      );
      assert.deepEqual(events.map((e) => [e.event_type, e.aggregate_version]), [
        ["graph.relationship.created", "1"],
        ["graph.relationship.updated", "2"],
        ["graph.relationship.updated", "3"],
        ["graph.relationship.deleted", "4"],
      ]);
      const { rows: history } = await h.db.raw<{ rows: { revision: number; strength: number; target_version: number | null; open: boolean }[] }>(
        "select revision, strength, target_version, valid_to is null as open from relationship_revision where tenant_id = ? and relationship_id = ? order by revision",
        [t.tenantId, ab.id],
      );
      assert.deepEqual(history.map((r) => [r.revision, r.strength, r.target_version, r.open]), [
        [1, 1, null, false],
        [2, 0.7, 1, false],
        [3, 0.7, null, false],
      ], "every state with its validity, closed by the delete");
    });

    test("idempotent create with request_id; duplicates, pins and bad input", async () => {
      const t = await h.tenantWith(["editor"]);
      const editor = t.users[0]!;
      const [a, b, c] = await h.entities(t.tenantId, editor.id, 3);
      const requestId = randomUUID();
      const first = ok(await create(editor.token, { sourceEntityId: a, targetEntityId: b, type: DEPENDS }, requestId));
      const retry = ok(await create(editor.token, { sourceEntityId: a, targetEntityId: b, type: DEPENDS }, requestId));
      assert.equal(retry.id, first.id, "a retry returns the first result");
      assert.deepEqual(failure(await create(editor.token, { sourceEntityId: a, targetEntityId: c, type: DEPENDS }, requestId)), { code: "ALREADY_EXISTS", reason: "REQUEST_ID_REUSED" });
      assert.equal(failure(await create(editor.token, { sourceEntityId: a, targetEntityId: b, type: DEPENDS })).code, "ALREADY_EXISTS");
      ok(await create(editor.token, { sourceEntityId: a, targetEntityId: b, type: RelationshipType.SUGGESTS }));

      assert.deepEqual(badFields(await create(editor.token, { sourceEntityId: a, targetEntityId: a, type: DEPENDS })), ["relationship"], "self-loop");
      assert.deepEqual(badFields(await create(editor.token, { sourceEntityId: a, targetEntityId: c })), ["relationship"], "type required");
      assert.deepEqual(badFields(await create(editor.token, { sourceEntityId: "nope", targetEntityId: c, type: DEPENDS })), ["relationship.source_entity_id"]);
      assert.deepEqual(badFields(await create(editor.token, { sourceEntityId: a, targetEntityId: c, type: DEPENDS, strength: 2 })), ["relationship.strength"]);
      assert.deepEqual(badFields(await create(editor.token, { sourceEntityId: a, targetEntityId: c, type: DEPENDS, targetPin: { case: "targetVersion", value: 5 } })), [
        "relationship.target_version",
      ]);
      assert.deepEqual(badFields(await create(editor.token, { sourceEntityId: a, targetEntityId: c, type: DEPENDS, targetPin: { case: "targetLabel", value: "production" } })), [
        "relationship.target_label",
      ], "the target has no such label");
      assert.deepEqual(badFields(await create(editor.token, { sourceEntityId: a, targetEntityId: c, type: DEPENDS, targetPin: { case: "targetLabel", value: "Bad Label" } })), [
        "relationship.target_label",
      ]);
      await addVersion(h.db, t.tenantId, c!, editor.id, { title: "c v2" });
      const pinned = ok(await create(editor.token, { sourceEntityId: a, targetEntityId: c, type: DEPENDS, targetPin: { case: "targetVersion", value: 2 } }));
      assert.deepEqual(pinned.targetPin, { case: "targetVersion", value: 2 });
      const latest = ok(await create(editor.token, { sourceEntityId: b, targetEntityId: c, type: DEPENDS, targetPin: { case: "targetLabel", value: "latest" } }));
      assert.equal(latest.targetPin.case, undefined, "`latest` is stored as no pin");
      assert.deepEqual(badFields(await h.call(protocol, M.listRelationships, { entityId: a, pageSize: 5000 }, editor.token)), ["page_size"]);
      assert.deepEqual(failure(await h.call(protocol, M.getRelationship, { relationshipId: randomUUID() }, editor.token)), NOT_FOUND);
    });

    test("cycles of depends_on and part_of, mixed, are refused with their path; other types may cycle", async () => {
      const t = await h.tenantWith(["editor"]);
      const editor = t.users[0]!;
      const [a, b, c] = await h.entities(t.tenantId, editor.id, 3);
      ok(await create(editor.token, { sourceEntityId: a, targetEntityId: b, type: DEPENDS }));
      ok(await create(editor.token, { sourceEntityId: b, targetEntityId: c, type: PART_OF }));
      const closing = await create(editor.token, { sourceEntityId: c, targetEntityId: a, type: DEPENDS });
      assert.deepEqual(failure(closing), CYCLE);
      assert.equal(closing.ok ? "" : closing.metadata.cycle, [c, a, b, c].join(","), "the cycle's path, first = last");
      assert.deepEqual(failure(await create(editor.token, { sourceEntityId: c, targetEntityId: a, type: PART_OF })), CYCLE);
      assert.deepEqual(failure(await create(editor.token, { sourceEntityId: b, targetEntityId: a, type: DEPENDS })), CYCLE);
      ok(await create(editor.token, { sourceEntityId: c, targetEntityId: a, type: RelationshipType.DERIVED_FROM }));
      ok(await create(editor.token, { sourceEntityId: c, targetEntityId: a, type: RelationshipType.SUGGESTS }));
    });

    test("depth limit: a depends_on / part_of chain of more than 10 edges is refused", async () => {
      const t = await h.tenantWith(["editor"]);
      const editor = t.users[0]!;
      const ids = await h.entities(t.tenantId, editor.id, 12);
      for (let i = 0; i < 10; i++) ok(await create(editor.token, { sourceEntityId: ids[i], targetEntityId: ids[i + 1], type: i % 2 ? PART_OF : DEPENDS }));
      assert.deepEqual(failure(await create(editor.token, { sourceEntityId: ids[10], targetEntityId: ids[11], type: DEPENDS })), { code: "FAILED_PRECONDITION", reason: "RELATIONSHIP_TOO_DEEP" });
      const [top] = await h.entities(t.tenantId, editor.id, 1);
      assert.deepEqual(failure(await create(editor.token, { sourceEntityId: top, targetEntityId: ids[0], type: PART_OF })), { code: "FAILED_PRECONDITION", reason: "RELATIONSHIP_TOO_DEEP" });
      // Joining lower keeps the chain at 10; other types do not count.
      ok(await create(editor.token, { sourceEntityId: top, targetEntityId: ids[1], type: DEPENDS }));
      ok(await create(editor.token, { sourceEntityId: ids[10], targetEntityId: ids[11], type: RelationshipType.SUGGESTS }));
    });

    test("access: both ends visible, edit on the source; viewers read only; private entities are not found; deleted entities refused", async () => {
      const t = await h.tenantWith(["editor", "editor", "viewer"]);
      const [owner, other, viewer] = t.users;
      const [shared1, shared2] = await h.entities(t.tenantId, owner!.id, 2);
      const [secret] = await h.entities(t.tenantId, owner!.id, 1, { visibility: "private" });
      const rel = ok(await create(owner!.token, { sourceEntityId: shared1, targetEntityId: secret, type: DEPENDS }));
      ok(await create(owner!.token, { sourceEntityId: shared1, targetEntityId: shared2, type: DEPENDS }));
      assert.deepEqual(failure(await h.call(protocol, M.getRelationship, { relationshipId: rel.id }, other!.token)), NOT_FOUND, "an end the caller may not view hides the relationship");
      const listed = ok(await h.call(protocol, M.listRelationships, { entityId: shared1 }, other!.token));
      assert.deepEqual(listed.relationships.map((r) => r.targetEntityId), [shared2], "the private target is left out");
      assert.deepEqual(failure(await h.call(protocol, M.listRelationships, { entityId: secret }, other!.token)), NOT_FOUND);
      const hidden = await create(other!.token, { sourceEntityId: shared2, targetEntityId: secret, type: DEPENDS });
      assert.deepEqual(failure(hidden), NOT_FOUND);
      assert.deepEqual(badFields(hidden), [], "NOT_FOUND carries no field violation");
      // Tenant-visible: editors edit.
      ok(await create(other!.token, { sourceEntityId: shared2, targetEntityId: shared1, type: RelationshipType.SUGGESTS }));
      assert.deepEqual(failure(await create(viewer!.token, { sourceEntityId: shared2, targetEntityId: shared1, type: RelationshipType.DERIVED_FROM })), {
        code: "PERMISSION_DENIED",
        reason: "PERMISSION_INSUFFICIENT",
      });
      assert.equal(ok(await h.call(protocol, M.listRelationships, { entityId: shared1 }, viewer!.token)).relationships.length, 1, "viewers read");
      assert.equal(failure(await h.call(protocol, M.deleteRelationship, { relationshipId: rel.id }, viewer!.token)).code, "NOT_FOUND");
      const [gone] = await h.entities(t.tenantId, owner!.id, 1);
      await h.softDelete(t.tenantId, gone!);
      assert.deepEqual(failure(await create(owner!.token, { sourceEntityId: shared1, targetEntityId: gone, type: DEPENDS })), { code: "FAILED_PRECONDITION", reason: "RESOURCE_DELETED" });
    });

    test("API keys act as themselves: creator api_key:<id>; a private entity of a user is not theirs to see", async () => {
      const t = await h.tenantWith(["owner"]);
      const owner = t.users[0]!;
      const key = await newApiKey(h.identity, owner.token, "editor");
      const [a, b] = await h.entities(t.tenantId, owner.id, 2);
      const [mine] = await h.entities(t.tenantId, owner.id, 1, { visibility: "private" });
      const created = ok(await create(key.secret, { sourceEntityId: a, targetEntityId: b, type: DEPENDS }));
      assert.equal(created.creatorId, `api_key:${key.id}`);
      assert.deepEqual(failure(await create(key.secret, { sourceEntityId: a, targetEntityId: mine, type: DEPENDS })), NOT_FOUND);
      assert.equal(ok(await h.call(protocol, M.getRelationship, { relationshipId: created.id }, owner.token)).creatorId, `api_key:${key.id}`);
    });

    test("tenancy: another tenant's entities and relationships do not exist", async () => {
      const t = await h.tenantWith(["owner"]);
      const u = await h.tenantWith(["owner"]);
      const [a, b] = await h.entities(t.tenantId, t.users[0]!.id, 2);
      const [x] = await h.entities(u.tenantId, u.users[0]!.id, 1);
      const rel = ok(await create(t.users[0]!.token, { sourceEntityId: a, targetEntityId: b, type: DEPENDS }));
      const stranger = u.users[0]!.token;
      assert.deepEqual(failure(await h.call(protocol, M.getRelationship, { relationshipId: rel.id }, stranger)), NOT_FOUND);
      assert.deepEqual(failure(await h.call(protocol, M.listRelationships, { entityId: a }, stranger)), NOT_FOUND);
      assert.deepEqual(failure(await create(stranger, { sourceEntityId: x, targetEntityId: a, type: DEPENDS })), NOT_FOUND);
      assert.deepEqual(failure(await h.call(protocol, M.deleteRelationship, { relationshipId: rel.id }, stranger)), NOT_FOUND);
      assert.equal(failure(await h.call(protocol, M.getRelationship, { relationshipId: rel.id })).code, "UNAUTHENTICATED");
    });

    test.skipIf(EMBEDDED)("concurrency: of N concurrent edges that together close cycles, exactly one is created (needs concurrent transactions; the embedded engine runs one at a time)", async () => {
      const t = await h.tenantWith(["editor"]);
      const editor = t.users[0]!;
      const n = 6;
      const sources = await h.entities(t.tenantId, editor.id, n);
      const targets = await h.entities(t.tenantId, editor.id, n);
      // targets[i] -> sources[j] for every i != j (mixed types): any two new edges sources[i] -> targets[i]
      // close a cycle together, none alone.
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) if (i !== j) ok(await create(editor.token, { sourceEntityId: targets[i], targetEntityId: sources[j], type: (i + j) % 2 ? PART_OF : DEPENDS }));
      }
      const outcomes = await Promise.all(sources.map((s, i) => create(editor.token, { sourceEntityId: s, targetEntityId: targets[i], type: i % 2 ? PART_OF : DEPENDS })));
      assert.equal(outcomes.filter((o) => o.ok).length, 1, "exactly one wins");
      for (const o of outcomes.filter((x) => !x.ok)) assert.deepEqual(failure(o), CYCLE);
    });
  });
}
