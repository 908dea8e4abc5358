import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { LabelEventType } from "@promptcraft/proto/promptcraft/content/v1/resources_pb";
import { addVersion, createEntity } from "@promptcraft/content/fixtures";
import { badFields, ContentHarness, DENIED, ETAG_MISMATCH, failure, NOT_FOUND, ok, PROTOCOLS } from "./content-e2e-helpers.js";

/** ContentService labels over gRPC and Connect: set/move/remove, `latest`, history, protection, races, access, events. */

const h = new ContentHarness();
beforeAll(() => h.start());
afterAll(() => h.close());

const M = ContentService.method;
const PROTECTED = { code: "PERMISSION_DENIED", reason: "LABEL_PROTECTED" };

/** An entity owned by `ownerId` with `versions` versions. */
async function entityWithVersions(tenantId: string, ownerId: string, versions: number, visibility: "private" | "tenant" = "private"): Promise<string> {
  const { id } = await createEntity(h.db, tenantId, ownerId, { title: "v1", visibility });
  for (let v = 2; v <= versions; v++) await addVersion(h.db, tenantId, id, ownerId, { title: `v${v}` });
  return id;
}

async function rowVersion(entityId: string): Promise<string> {
  const { rows } = await h.db.raw<{ rows: { row_version: string }[] }>("select row_version::text as row_version from entity where id = ?", [entityId]);
  return rows[0]!.row_version;
}

/** The label's rows in entity_label, oldest first. */
async function labelRows(entityId: string, label: string) {
  const { rows } = await h.db.raw<{ rows: { version: number; valid_from: Date; valid_to: Date | null }[] }>(
    "select version, valid_from, valid_to from entity_label where entity_id = ? and label = ? order by valid_from",
    [entityId, label],
  );
  return rows;
}

for (const protocol of PROTOCOLS) {
  describe(`labels over ${protocol}`, () => {
    test("SetLabel creates and moves; the same version again is a no-op; RemoveLabel; history, etag and events", async () => {
      const t = await h.tenantWith(["editor"]);
      const editor = t.users[0]!;
      const entityId = await entityWithVersions(t.tenantId, editor.id, 3);
      const etagBefore = await rowVersion(entityId);
      const callId = randomUUID();

      const set = ok(await h.call(protocol, M.setLabel, { entityId, label: "staging", version: 1, reason: "first cut" }, editor.token, { "x-request-id": callId }));
      assert.equal(set.entityId, entityId);
      assert.equal(set.name, "staging");
      assert.equal(set.version, 1);
      assert.equal(set.protected, false);
      assert.equal(set.implicit, false);
      assert.equal(set.updaterId, editor.id);
      const moved = ok(await h.call(protocol, M.setLabel, { entityId, label: "staging", version: 2, expectedVersion: 1 }, editor.token));
      assert.equal(moved.version, 2);
      assert.equal(BigInt(await rowVersion(entityId)), BigInt(etagBefore) + 2n, "each move bumps the etag");

      const again = ok(await h.call(protocol, M.setLabel, { entityId, label: "staging", version: 2 }, editor.token));
      assert.deepEqual(again.updateTime, moved.updateTime, "no-op keeps the label as it was");
      assert.equal(BigInt(await rowVersion(entityId)), BigInt(etagBefore) + 2n, "a no-op changes nothing");

      const listed = ok(await h.call(protocol, M.listLabels, { entityId }, editor.token));
      assert.deepEqual(
        listed.labels.map((l) => [l.name, l.version, l.implicit]),
        [
          ["latest", 3, true],
          ["staging", 2, false],
        ],
      );
      assert.equal(listed.labels[0]!.updaterId, "");
      // As of the instant of the set (times come back to the microsecond): staging still at 1.
      const then = ok(await h.call(protocol, M.listLabels, { entityId, asOfTime: set.updateTime }, editor.token));
      assert.deepEqual(
        then.labels.map((l) => [l.name, l.version]),
        [
          ["latest", 3],
          ["staging", 1],
        ],
      );

      ok(await h.call(protocol, M.removeLabel, { entityId, label: "staging", reason: "retired" }, editor.token));
      ok(await h.call(protocol, M.removeLabel, { entityId, label: "staging" }, editor.token)); // idempotent
      assert.deepEqual(
        ok(await h.call(protocol, M.listLabels, { entityId }, editor.token)).labels.map((l) => l.name),
        ["latest"],
      );

      const history = ok(await h.call(protocol, M.listLabelHistory, { entityId }, editor.token)).events;
      assert.deepEqual(
        history.map((e) => [e.type, e.fromVersion, e.toVersion, e.actorId, e.reason]),
        [
          [LabelEventType.REMOVED, 2, undefined, editor.id, "retired"],
          [LabelEventType.MOVED, 1, 2, editor.id, ""],
          [LabelEventType.SET, undefined, 1, editor.id, "first cut"],
        ],
      );
      assert.equal(history[2]!.requestId, callId);
      const rows = await labelRows(entityId, "staging");
      assert.equal(rows.length, 2);
      assert.deepEqual(rows[0]!.valid_to, rows[1]!.valid_from, "a move closes the old row at the instant the new one starts");
      assert.notEqual(rows[1]!.valid_to, null, "remove closes the row");

      const events = (await h.events(t.tenantId, entityId)).filter((e) => e.event_type.startsWith("content.label."));
      assert.deepEqual(
        events.map((e) => [e.event_type, e.payload.from_version, e.payload.to_version]),
        [
          ["content.label.moved", null, 1],
          ["content.label.moved", 1, 2],
          ["content.label.removed", 2, null],
        ],
      );
      assert.equal(events[0]!.actor_id, editor.id);
      assert.equal(events[0]!.request_id, callId);
      assert.equal(events[2]!.aggregate_version, await rowVersion(entityId));
    });

    test("protected labels (tenant setting protected_labels, default production) need the admin role", async () => {
      const t = await h.tenantWith(["owner", "admin", "editor"]);
      const [owner, admin, editor] = t.users;
      const entityId = await entityWithVersions(t.tenantId, editor!.id, 2);
      assert.deepEqual(failure(await h.call(protocol, M.setLabel, { entityId, label: "production", version: 1 }, editor!.token)), PROTECTED);
      const set = ok(await h.call(protocol, M.setLabel, { entityId, label: "production", version: 1 }, admin!.token));
      assert.equal(set.protected, true);
      ok(await h.call(protocol, M.setLabel, { entityId, label: "production", version: 2 }, owner!.token));
      assert.deepEqual(failure(await h.call(protocol, M.setLabel, { entityId, label: "production", version: 1 }, editor!.token)), PROTECTED);
      assert.deepEqual(failure(await h.call(protocol, M.removeLabel, { entityId, label: "production" }, editor!.token)), PROTECTED);
      assert.equal(ok(await h.call(protocol, M.listLabels, { entityId }, editor!.token)).labels.find((l) => l.name === "production")!.protected, true);

      // The tenant decides which labels are protected.
      await h.db.raw(`update tenant set settings = '{"protected_labels": ["prod"]}'::jsonb where id = ?`, [t.tenantId]);
      ok(await h.call(protocol, M.setLabel, { entityId, label: "production", version: 1 }, editor!.token));
      assert.deepEqual(failure(await h.call(protocol, M.setLabel, { entityId, label: "prod", version: 1 }, editor!.token)), PROTECTED);
      ok(await h.call(protocol, M.setLabel, { entityId, label: "prod", version: 1 }, admin!.token));
      ok(await h.call(protocol, M.removeLabel, { entityId, label: "prod" }, owner!.token));
    });

    test("wrong roles and other tenants: viewers read but never write; private entities and other tenants are NOT_FOUND", async () => {
      const t = await h.tenantWith(["editor", "viewer", "editor"]);
      const [owner, viewer, otherEditor] = t.users;
      const shared = await entityWithVersions(t.tenantId, owner!.id, 2, "tenant");
      const hidden = await entityWithVersions(t.tenantId, owner!.id, 2, "private");
      ok(await h.call(protocol, M.setLabel, { entityId: shared, label: "beta", version: 1 }, owner!.token));
      ok(await h.call(protocol, M.setLabel, { entityId: hidden, label: "beta", version: 1 }, owner!.token));

      // Tenant visibility: viewers read, editors of the tenant write, viewers do not.
      assert.equal(ok(await h.call(protocol, M.listLabels, { entityId: shared }, viewer!.token)).labels.length, 2);
      assert.equal(ok(await h.call(protocol, M.listLabelHistory, { entityId: shared }, viewer!.token)).events.length, 1);
      assert.deepEqual(failure(await h.call(protocol, M.setLabel, { entityId: shared, label: "beta", version: 2 }, viewer!.token)), DENIED);
      assert.deepEqual(failure(await h.call(protocol, M.removeLabel, { entityId: shared, label: "beta" }, viewer!.token)), DENIED);
      ok(await h.call(protocol, M.setLabel, { entityId: shared, label: "beta", version: 2 }, otherEditor!.token));

      const other = await h.tenantWith(["owner"]);
      const outsiders = [viewer!, otherEditor!];
      for (const who of outsiders) {
        assert.deepEqual(failure(await h.call(protocol, M.setLabel, { entityId: hidden, label: "beta", version: 2 }, who.token)), NOT_FOUND);
        assert.deepEqual(failure(await h.call(protocol, M.removeLabel, { entityId: hidden, label: "beta" }, who.token)), NOT_FOUND);
        assert.deepEqual(failure(await h.call(protocol, M.listLabels, { entityId: hidden }, who.token)), NOT_FOUND);
        assert.deepEqual(failure(await h.call(protocol, M.listLabelHistory, { entityId: hidden }, who.token)), NOT_FOUND);
      }
      const intruder = other.users[0]!.token; // an owner, but of another tenant
      for (const entityId of [shared, hidden]) {
        assert.deepEqual(failure(await h.call(protocol, M.setLabel, { entityId, label: "beta", version: 1 }, intruder)), NOT_FOUND);
        assert.deepEqual(failure(await h.call(protocol, M.removeLabel, { entityId, label: "beta" }, intruder)), NOT_FOUND);
        assert.deepEqual(failure(await h.call(protocol, M.listLabels, { entityId }, intruder)), NOT_FOUND);
        assert.deepEqual(failure(await h.call(protocol, M.listLabelHistory, { entityId }, intruder)), NOT_FOUND);
      }
      assert.equal((await labelRows(hidden, "beta")).length, 1, "nothing moved");
      assert.deepEqual(failure(await h.call(protocol, M.setLabel, { entityId: randomUUID(), label: "beta", version: 1 }, owner!.token)), NOT_FOUND);
    });

    test("expected_version, unknown versions, deleted entities, request_id retries, bad inputs", async () => {
      const t = await h.tenantWith(["editor"]);
      const editor = t.users[0]!;
      const entityId = await entityWithVersions(t.tenantId, editor.id, 3);
      assert.deepEqual(failure(await h.call(protocol, M.setLabel, { entityId, label: "qa", version: 1, expectedVersion: 2 }, editor.token)), ETAG_MISMATCH);
      ok(await h.call(protocol, M.setLabel, { entityId, label: "qa", version: 1, expectedVersion: 0 }, editor.token));
      assert.deepEqual(failure(await h.call(protocol, M.setLabel, { entityId, label: "qa", version: 2, expectedVersion: 0 }, editor.token)), ETAG_MISMATCH);
      assert.deepEqual(failure(await h.call(protocol, M.removeLabel, { entityId, label: "qa", expectedVersion: 3 }, editor.token)), ETAG_MISMATCH);
      assert.deepEqual(failure(await h.call(protocol, M.setLabel, { entityId, label: "qa", version: 9 }, editor.token)), NOT_FOUND);

      // A retry with the same request_id gets the first call's answer, even though expected_version is stale by then.
      const requestId = randomUUID();
      const first = ok(await h.call(protocol, M.setLabel, { entityId, label: "qa", version: 2, expectedVersion: 1, requestId }, editor.token));
      const retry = ok(await h.call(protocol, M.setLabel, { entityId, label: "qa", version: 2, expectedVersion: 1, requestId }, editor.token));
      assert.equal(retry.version, 2);
      assert.deepEqual(retry.updateTime, first.updateTime);
      assert.deepEqual(failure(await h.call(protocol, M.setLabel, { entityId, label: "qa", version: 3, requestId }, editor.token)), {
        code: "ALREADY_EXISTS",
        reason: "REQUEST_ID_REUSED",
      });
      assert.equal(ok(await h.call(protocol, M.listLabelHistory, { entityId, label: "qa" }, editor.token)).events.length, 2);

      const bad = async (method: Parameters<typeof h.call>[1], request: Record<string, unknown>, field: string) => {
        const outcome = await h.call(protocol, method, request, editor.token);
        assert.equal(failure(outcome).code, "INVALID_ARGUMENT", `${field} of ${method.name}`);
        assert.ok(badFields(outcome).includes(field), `${method.name}: expected ${field}, got ${badFields(outcome).join(",")}`);
      };
      await bad(M.setLabel, { entityId: "nope", label: "qa", version: 1 }, "entity_id");
      await bad(M.setLabel, { entityId, label: "latest", version: 1 }, "label");
      await bad(M.setLabel, { entityId, label: "Not Valid", version: 1 }, "label");
      await bad(M.setLabel, { entityId, label: "qa", version: 0 }, "version");
      await bad(M.setLabel, { entityId, label: "qa", version: 1, expectedVersion: -1 }, "expected_version");
      await bad(M.setLabel, { entityId, label: "qa", version: 1, reason: "x".repeat(1001) }, "reason");
      await bad(M.setLabel, { entityId, label: "qa", version: 1, requestId: "not-a-uuid" }, "request_id");
      await bad(M.removeLabel, { entityId, label: "latest" }, "label");
      await bad(M.removeLabel, { entityId, label: "qa", expectedVersion: 0 }, "expected_version");
      await bad(M.listLabels, { entityId, pageSize: 1001 }, "page_size");
      await bad(M.listLabels, { entityId, pageToken: "garbage" }, "page_token");
      await bad(M.listLabels, { entityId, asOfTime: timestampFromDate(new Date(Date.now() + 3_600_000)) }, "as_of_time");
      await bad(M.listLabelHistory, { entityId, label: "UPPER" }, "label");
      await bad(M.listLabelHistory, { entityId: "", pageSize: 1 }, "entity_id");

      await h.db.raw("update entity set deleted_at = now(), deleted_by = owner_id, purge_time = now() + interval '30 days' where id = ?", [entityId]);
      assert.deepEqual(failure(await h.call(protocol, M.setLabel, { entityId, label: "qa", version: 3 }, editor.token)), {
        code: "FAILED_PRECONDITION",
        reason: "RESOURCE_DELETED",
      });
      assert.equal(ok(await h.call(protocol, M.listLabels, { entityId }, editor.token)).labels.length, 2, "a deleted entity keeps its labels");
    });

    test("ListLabels and ListLabelHistory page with opaque tokens", async () => {
      const t = await h.tenantWith(["editor"]);
      const editor = t.users[0]!;
      const entityId = await entityWithVersions(t.tenantId, editor.id, 2);
      for (const label of ["a", "b", "c", "d"]) ok(await h.call(protocol, M.setLabel, { entityId, label, version: 1 }, editor.token));
      ok(await h.call(protocol, M.setLabel, { entityId, label: "a", version: 2 }, editor.token));
      const names: string[] = [];
      let pageToken = "";
      do {
        const page = ok(await h.call(protocol, M.listLabels, { entityId, pageSize: 2, pageToken }, editor.token));
        assert.ok(page.labels.length <= 2);
        names.push(...page.labels.map((l) => l.name));
        pageToken = page.nextPageToken;
      } while (pageToken);
      assert.deepEqual(names, ["a", "b", "c", "d", "latest"]);

      const firstPage = ok(await h.call(protocol, M.listLabelHistory, { entityId, pageSize: 3 }, editor.token));
      assert.deepEqual(
        firstPage.events.map((e) => [e.label, e.toVersion]),
        [
          ["a", 2],
          ["d", 1],
          ["c", 1],
        ],
      );
      const secondPage = ok(await h.call(protocol, M.listLabelHistory, { entityId, pageSize: 3, pageToken: firstPage.nextPageToken }, editor.token));
      assert.deepEqual(
        secondPage.events.map((e) => e.label),
        ["b", "a"],
      );
      assert.equal(secondPage.nextPageToken, "");
      const otherQuery = await h.call(protocol, M.listLabelHistory, { entityId, label: "a", pageToken: firstPage.nextPageToken }, editor.token);
      assert.deepEqual(failure(otherQuery), { code: "INVALID_ARGUMENT", reason: "PAGE_TOKEN_INVALID" });
    });

    test("ListLabelHistory orders by the event id as a number, also where the ids cross a power of ten", async () => {
      // Regression: `order by id` once sorted the text output column, putting id 9 before id 10.
      const t = await h.tenantWith(["editor"]);
      const editor = t.users[0]!;
      const entityId = await entityWithVersions(t.tenantId, editor.id, 3);
      // The ids are primary keys per entity, so a fresh entity may hold any; written as the service would.
      for (const [id, from, to] of [[9, null, 1], [10, 1, 2], [100, 2, 3]] as const) {
        await h.db.raw(
          `insert into entity_label_event (tenant_id, entity_id, id, label, event_type, from_version, to_version, actor_type, actor_id, occurred_at)
           overriding system value values (?, ?, ?, 'x', ?, ?, ?, 'user', ?, now() - make_interval(secs => ?))`,
          [t.tenantId, entityId, id, from === null ? "set" : "moved", from, to, editor.id, 1000 - id],
        );
      }
      const all = ok(await h.call(protocol, M.listLabelHistory, { entityId }, editor.token));
      assert.deepEqual(all.events.map((e) => e.toVersion), [3, 2, 1]);
      const paged: number[] = [];
      let pageToken = "";
      do {
        const page = ok(await h.call(protocol, M.listLabelHistory, { entityId, label: "x", pageSize: 1, pageToken }, editor.token));
        paged.push(...page.events.map((e) => e.toVersion!));
        pageToken = page.nextPageToken;
      } while (pageToken);
      assert.deepEqual(paged, [3, 2, 1]);
    });
  });
}

test("concurrent SetLabel calls on one label all succeed, one after the other, with a gap-free, non-overlapping history", async () => {
  const t = await h.tenantWith(["editor"]);
  const editor = t.users[0]!;
  const entityId = await entityWithVersions(t.tenantId, editor.id, 4);
  const targets = Array.from({ length: 16 }, (_, i) => (i % 4) + 1);
  const outcomes = await Promise.all(
    targets.map((version, i) => h.call(PROTOCOLS[i % 2]!, M.setLabel, { entityId, label: "release", version }, editor.token)),
  );
  for (const outcome of outcomes) ok(outcome);

  const rows = await labelRows(entityId, "release");
  assert.equal(rows.filter((r) => r.valid_to === null).length, 1, "one current target");
  for (let i = 1; i < rows.length; i++) {
    assert.deepEqual(rows[i]!.valid_from, rows[i - 1]!.valid_to, "each row starts exactly when the previous one ended");
    assert.notEqual(rows[i]!.version, rows[i - 1]!.version, "a move to the same version is a no-op");
  }
  const history = ok(await h.call("grpc", M.listLabelHistory, { entityId, pageSize: 100 }, editor.token)).events.reverse();
  assert.equal(history.length, rows.length);
  for (let i = 1; i < history.length; i++) assert.equal(history[i]!.fromVersion, history[i - 1]!.toVersion, "each move starts where the last ended");
  assert.equal(history[history.length - 1]!.toVersion, rows[rows.length - 1]!.version);
});
