import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { EntityStatus, EntityType, EntityView, Permission, Visibility } from "@promptcraft/proto/promptcraft/content/v1/resources_pb";
import { setLabel } from "@promptcraft/content/fixtures";
import { contentHash } from "@promptcraft/testing";
import { badFields, ContentHarness, DENIED, failure, NOT_FOUND, ok, PROTOCOLS } from "./content-e2e-helpers.js";

/** ContentService entities over gRPC and Connect: create (idempotent), get (version, label, time travel), roles and tenancy. */

const h = new ContentHarness();
beforeAll(() => h.start());
afterAll(() => h.close());

const M = ContentService.method;

for (const protocol of PROTOCOLS) {
  describe(`entities over ${protocol}`, () => {
    test("CreateEntity: version 1 owned by the caller, defaults, hash, event with actor and request id", async () => {
      const t = await h.tenantWith(["editor"]);
      const editor = t.users[0]!;
      const callId = randomUUID();
      const created = ok(
        await h.call(
          protocol,
          M.createEntity,
          { entity: { type: EntityType.TEMPLATE, title: "Greeting", content: { template: "Hello {{name}}" }, tags: ["a", "b"] }, commitMessage: "first" },
          editor.token,
          { "x-request-id": callId },
        ),
      );
      assert.equal(created.tenantId, t.tenantId);
      assert.equal(created.ownerId, editor.id);
      assert.equal(created.authorId, editor.id);
      assert.equal(created.type, EntityType.TEMPLATE);
      assert.equal(created.status, EntityStatus.DRAFT);
      assert.equal(created.visibility, Visibility.PRIVATE);
      assert.equal(created.version, 1);
      assert.equal(created.currentVersion, 1);
      assert.equal(created.commitMessage, "first");
      assert.deepEqual(created.content, { template: "Hello {{name}}" });
      assert.deepEqual(created.labels, ["latest"]);
      assert.equal(created.callerPermission, Permission.ADMIN);
      assert.equal(created.etag, "1");
      assert.equal(
        created.contentHash,
        contentHash({ title: "Greeting", description: "", status: "draft", visibility: "private", content: { template: "Hello {{name}}" }, tags: ["a", "b"], metadata: {} }),
      );
      const events = await h.events(t.tenantId, created.id);
      assert.equal(events.length, 1);
      assert.equal(events[0]!.event_type, "content.entity.created");
      assert.equal(events[0]!.aggregate_type, "entity");
      assert.equal(events[0]!.actor_id, editor.id);
      assert.equal(events[0]!.request_id, callId);
      assert.equal(events[0]!.payload.version, 1);

      const defaultCommit = ok(await h.call(protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, title: "x" } }, editor.token));
      assert.equal(defaultCommit.commitMessage, "Create");
    });

    test("CreateEntity: request_id makes retries return the first entity; another payload is REQUEST_ID_REUSED", async () => {
      const t = await h.tenantWith(["editor", "editor"]);
      const [a, b] = t.users;
      const requestId = randomUUID();
      const entity = { type: EntityType.CONTEXT, title: "Idem", content: { text: "x" } };
      const first = ok(await h.call(protocol, M.createEntity, { entity, requestId }, a!.token));
      const retry = ok(await h.call(protocol, M.createEntity, { entity, requestId }, a!.token));
      assert.equal(retry.id, first.id);
      assert.equal(retry.etag, first.etag);
      const reused = { code: "ALREADY_EXISTS", reason: "REQUEST_ID_REUSED" };
      assert.deepEqual(failure(await h.call(protocol, M.createEntity, { entity: { ...entity, title: "Other" }, requestId }, a!.token)), reused);
      assert.deepEqual(failure(await h.call(protocol, M.createEntity, { entity: { ...entity, type: EntityType.LIBRARY }, requestId }, a!.token)), reused);
      // Another user of the tenant reusing the key is another request.
      assert.deepEqual(failure(await h.call(protocol, M.createEntity, { entity, requestId }, b!.token)), reused);
      // Concurrent retries all get the one entity.
      const key = randomUUID();
      const racing = await Promise.all(Array.from({ length: 6 }, () => h.call(protocol, M.createEntity, { entity, requestId: key }, a!.token)));
      assert.equal(new Set(racing.map((r) => ok(r).id)).size, 1);
      assert.equal((await h.events(t.tenantId)).filter((e) => e.event_type === "content.entity.created").length, 2);
    });

    test("CreateEntity: viewers may not create; bad input is INVALID_ARGUMENT naming the field; quota", async () => {
      const t = await h.tenantWith(["viewer", "editor"], { max_entities: 2 });
      const [viewer, editor] = t.users;
      assert.deepEqual(failure(await h.call(protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, title: "x" } }, viewer!.token)), DENIED);
      const bad = async (request: object) => {
        const outcome = await h.call(protocol, M.createEntity, request, editor!.token);
        assert.equal(failure(outcome).code, "INVALID_ARGUMENT", JSON.stringify(request));
        return badFields(outcome);
      };
      assert.deepEqual(await bad({}), ["entity"]);
      assert.ok((await bad({ entity: { title: "x" } })).some((f) => f.startsWith("entity")));
      assert.ok((await bad({ entity: { type: EntityType.CONTEXT } })).some((f) => f.startsWith("entity")));
      assert.deepEqual(await bad({ entity: { type: EntityType.CONTEXT, title: "   " } }), ["entity.title"]);
      assert.deepEqual(await bad({ entity: { type: EntityType.CONTEXT, title: "x".repeat(301) } }), ["entity.title"]);
      assert.deepEqual(await bad({ entity: { type: EntityType.CONTEXT, title: "x", tags: [" padded"] } }), ["entity.tags[0]"]);
      assert.deepEqual(await bad({ entity: { type: EntityType.CONTEXT, title: "x", tags: ["a", "a"] } }), ["entity.tags"]);
      assert.deepEqual(await bad({ entity: { type: EntityType.CONTEXT, title: "x", content: { text: "nul\u0000" } } }), ["entity.content.text"]);
      assert.deepEqual(await bad({ entity: { type: EntityType.CONTEXT, title: "x" }, requestId: "not-a-uuid" }), ["request_id"]);
      assert.deepEqual(await bad({ entity: { type: 99, title: "x" } }), ["entity.type"]);
      const huge = await h.call(protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, title: "x", content: { text: "y".repeat(1024 * 1024) } } }, editor!.token);
      assert.deepEqual(failure(huge), { code: "INVALID_ARGUMENT", reason: "CONTENT_TOO_LARGE" });
      assert.deepEqual(badFields(huge), ["entity.content"]);
      assert.ok(!huge.ok);
      assert.equal(huge.metadata.limit_bytes, String(1024 * 1024));
      assert.ok(Number(huge.metadata.size_bytes) > 1024 * 1024, "the size counted, under the key errors.proto names");

      ok(await h.call(protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, title: "1" } }, editor!.token));
      ok(await h.call(protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, title: "2" } }, editor!.token));
      assert.deepEqual(failure(await h.call(protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, title: "3" } }, editor!.token)), {
        code: "RESOURCE_EXHAUSTED",
        reason: "QUOTA_EXCEEDED",
      });
    });

    test("GetEntity: current, a version, a label, as of a time, and a label as of a time", async () => {
      const t = await h.tenantWith(["editor"]);
      const editor = t.users[0]!;
      const v1 = ok(await h.call(protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, title: "one", content: { text: "1" } } }, editor.token));
      const afterV1 = new Date();
      await new Promise((r) => setTimeout(r, 5));
      await setLabel(h.db, t.tenantId, v1.id, "production", 1, editor.id);
      const mask = { paths: ["title", "content"] };
      const v2 = ok(await h.call(protocol, M.updateEntity, { entity: { id: v1.id, title: "two", content: { text: "2" } }, updateMask: mask }, editor.token));
      assert.equal(v2.version, 2);
      const afterV2 = new Date();
      await new Promise((r) => setTimeout(r, 5));
      await setLabel(h.db, t.tenantId, v1.id, "production", 2, editor.id);
      ok(await h.call(protocol, M.updateEntity, { entity: { id: v1.id, title: "three" }, updateMask: { paths: ["title"] } }, editor.token));

      const get = async (req: object) => ok(await h.call(protocol, M.getEntity, { entityId: v1.id, ...req }, editor.token));
      const current = await get({});
      assert.equal(current.version, 3);
      assert.equal(current.title, "three");
      assert.deepEqual(current.content, { text: "2" });
      assert.deepEqual(current.labels, ["latest"]);
      assert.equal(current.revisionEndTime, undefined);
      const second = await get({ version: 2 });
      assert.equal(second.title, "two");
      assert.equal(second.currentVersion, 3);
      assert.deepEqual(second.labels, ["production"]);
      assert.ok(second.revisionEndTime);
      assert.equal((await get({ label: "production" })).version, 2);
      assert.equal((await get({ label: "latest" })).version, 3);
      const then = await get({ asOfTime: timestampFromDate(afterV1) });
      assert.equal(then.version, 1);
      assert.deepEqual(then.labels, ["latest"]);
      assert.equal((await get({ asOfTime: timestampFromDate(afterV2) })).version, 2);
      // What production served just after version 2 was written: still version 1.
      const servedThen = await get({ label: "production", asOfTime: timestampFromDate(afterV2) });
      assert.equal(servedThen.version, 1);
      assert.deepEqual(servedThen.labels, ["production"]);
      assert.equal((await get({ label: "latest", asOfTime: timestampFromDate(afterV2) })).version, 2);
      const basic = await get({ view: EntityView.BASIC });
      assert.equal(basic.content, undefined);
      assert.equal(basic.title, "three");

      const missing = async (req: object, metadata: Record<string, string>) => {
        const outcome = await h.call(protocol, M.getEntity, { entityId: v1.id, ...req }, editor.token);
        assert.deepEqual(failure(outcome), NOT_FOUND);
        assert.ok(!outcome.ok);
        for (const [k, v] of Object.entries(metadata)) assert.equal(outcome.metadata[k], v);
      };
      await missing({ version: 4 }, { resource_type: "entity_version", version: "4" });
      await missing({ label: "staging" }, { resource_type: "label", label: "staging" });
      await missing({ asOfTime: timestampFromDate(new Date(Date.now() - 3600_000)) }, { resource_type: "entity_version" });
      await missing({ label: "production", asOfTime: timestampFromDate(new Date(afterV1.getTime() - 1000)) }, { resource_type: "label" });
      assert.deepEqual(failure(await h.call(protocol, M.getEntity, { entityId: randomUUID() }, editor.token)), NOT_FOUND);

      const bad = async (req: object, field: string) => {
        const outcome = await h.call(protocol, M.getEntity, { entityId: v1.id, ...req }, editor.token);
        assert.equal(failure(outcome).code, "INVALID_ARGUMENT");
        assert.ok(badFields(outcome).includes(field), `${JSON.stringify(badFields(outcome))} includes ${field}`);
      };
      await bad({ entityId: "nope" }, "entity_id");
      await bad({ version: 0 }, "version");
      await bad({ label: "Not A Label" }, "label");
      await bad({ asOfTime: timestampFromDate(new Date(Date.now() + 3600_000)) }, "as_of_time");
      await bad({ version: 1, label: "production" }, "");
    });

    test("times round-trip to the microsecond: as_of = a returned time reads the version that time names", async () => {
      const t = await h.tenantWith(["editor"]);
      const editor = t.users[0]!;
      const created = ok(await h.call(protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, title: "v1" } }, editor.token));
      // Updates back to back, no pause: versions start microseconds apart, often within one millisecond.
      const written = [created];
      for (let v = 2; v <= 6; v++) {
        written.push(ok(await h.call(protocol, M.updateEntity, { entity: { id: created.id, title: `v${v}` }, updateMask: { paths: ["title"] } }, editor.token)));
      }
      const microsOf = (ts: { seconds: bigint; nanos: number }) => ts.seconds * 1_000_000n + BigInt(ts.nanos / 1000);
      const minusOneMicro = (ts: { seconds: bigint; nanos: number }) => {
        const micros = microsOf(ts) - 1n;
        return { seconds: micros / 1_000_000n, nanos: Number(micros % 1_000_000n) * 1000 };
      };
      for (const entity of written) {
        assert.equal(entity.updateTime!.nanos % 1000, 0, "no precision finer than PostgreSQL's is invented");
        assert.equal(microsOf(entity.updateTime!), microsOf(entity.revisionCreateTime!), "update_time is when the version started");
        const atUpdate = ok(await h.call(protocol, M.getEntity, { entityId: created.id, asOfTime: entity.updateTime }, editor.token));
        assert.equal(atUpdate.version, entity.version, `as of version ${entity.version}'s update_time`);
        assert.equal(microsOf(atUpdate.revisionCreateTime!), microsOf(entity.revisionCreateTime!));
        if (entity.version > 1) {
          const justBefore = ok(await h.call(protocol, M.getEntity, { entityId: created.id, asOfTime: minusOneMicro(entity.updateTime!) }, editor.token));
          assert.equal(justBefore.version, entity.version - 1, `one microsecond before version ${entity.version}`);
          assert.equal(microsOf(justBefore.revisionEndTime!), microsOf(entity.revisionCreateTime!), "the previous version ended exactly then");
        }
      }
      const label = ok(await h.call(protocol, M.setLabel, { entityId: created.id, label: "staging", version: 3 }, editor.token));
      const moved = ok(await h.call(protocol, M.setLabel, { entityId: created.id, label: "staging", version: 5 }, editor.token));
      const labelAt = async (ts: { seconds: bigint; nanos: number }) =>
        ok(await h.call(protocol, M.getEntity, { entityId: created.id, label: "staging", asOfTime: ts }, editor.token)).version;
      assert.equal(await labelAt(label.updateTime!), 3);
      assert.equal(await labelAt(minusOneMicro(moved.updateTime!)), 3);
      assert.equal(await labelAt(moved.updateTime!), 5);
      const history = ok(await h.call(protocol, M.listLabelHistory, { entityId: created.id, label: "staging" }, editor.token)).events;
      assert.deepEqual(
        history.map((e) => microsOf(e.eventTime!)),
        [microsOf(moved.updateTime!), microsOf(label.updateTime!)],
        "history times are the label's own instants",
      );
    });

    test("GetEntity and BatchGetEntities follow the access model; other tenants see nothing", async () => {
      const t = await h.tenantWith(["owner", "admin", "editor", "editor", "viewer"]);
      const [owner, admin, author, otherEditor, viewer] = t.users;
      const other = await h.tenantWith(["owner"]);
      const priv = ok(await h.call(protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, title: "private" } }, author!.token));
      const shared = ok(
        await h.call(protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, title: "tenant", visibility: Visibility.TENANT } }, author!.token),
      );
      const permission = async (id: string, user: { token: string }) => {
        const outcome = await h.call(protocol, M.getEntity, { entityId: id }, user.token);
        return outcome.ok ? outcome.res.callerPermission : failure(outcome);
      };
      assert.equal(await permission(priv.id, owner!), Permission.ADMIN);
      assert.equal(await permission(priv.id, admin!), Permission.ADMIN);
      assert.equal(await permission(priv.id, author!), Permission.ADMIN);
      assert.deepEqual(await permission(priv.id, otherEditor!), NOT_FOUND);
      assert.deepEqual(await permission(priv.id, viewer!), NOT_FOUND);
      assert.deepEqual(await permission(priv.id, other.users[0]!), NOT_FOUND);
      assert.equal(await permission(shared.id, otherEditor!), Permission.EDIT);
      assert.equal(await permission(shared.id, viewer!), Permission.VIEW);
      assert.deepEqual(await permission(shared.id, other.users[0]!), NOT_FOUND);

      const unknown = randomUUID();
      const batch = ok(await h.call(protocol, M.batchGetEntities, { entityIds: [shared.id, priv.id, unknown] }, otherEditor!.token));
      assert.deepEqual(batch.entities.map((e) => e.id), [shared.id]);
      assert.deepEqual(batch.missingEntityIds, [priv.id, unknown]);
      assert.equal(batch.entities[0]!.content, undefined, "basic view by default");
      const full = ok(await h.call(protocol, M.batchGetEntities, { entityIds: [priv.id, shared.id], view: EntityView.FULL }, author!.token));
      assert.deepEqual(full.entities.map((e) => e.id), [priv.id, shared.id]);
      assert.deepEqual(full.entities[0]!.content, {});
      const intruder = ok(await h.call(protocol, M.batchGetEntities, { entityIds: [priv.id, shared.id] }, other.users[0]!.token));
      assert.deepEqual(intruder.entities, []);
      assert.deepEqual(intruder.missingEntityIds, [priv.id, shared.id]);
      const bad = await h.call(protocol, M.batchGetEntities, { entityIds: [] }, author!.token);
      assert.deepEqual(badFields(bad), ["entity_ids"]);
      assert.deepEqual(badFields(await h.call(protocol, M.batchGetEntities, { entityIds: ["x"] }, author!.token)), ["entity_ids[0]"]);
      assert.deepEqual(failure(await h.call(protocol, M.getEntity, { entityId: priv.id })), { code: "UNAUTHENTICATED", reason: "CREDENTIALS_MISSING" });
    });

    test("API keys (acting for no user) read and write by their role, recorded as themselves (more in content-api-keys)", async () => {
      const t = await h.tenantWith(["owner", "editor"]);
      const [owner, author] = t.users;
      const editorKey = await h.apiKey(owner!.token, "editor");
      const { id: adminKeyId, secret: adminKey } = await h.newApiKey(owner!.token, "admin");
      const priv = ok(await h.call(protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, title: "private" } }, author!.token));
      const open = ok(await h.call(protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, title: "tenant", visibility: Visibility.TENANT } }, author!.token));
      assert.equal(ok(await h.call(protocol, M.getEntity, { entityId: open.id }, editorKey)).callerPermission, Permission.EDIT);
      assert.deepEqual(failure(await h.call(protocol, M.getEntity, { entityId: priv.id }, editorKey)), NOT_FOUND);
      assert.equal(ok(await h.call(protocol, M.getEntity, { entityId: priv.id }, adminKey)).callerPermission, Permission.ADMIN);
      assert.deepEqual(ok(await h.call(protocol, M.listEntities, { orderBy: "title" }, editorKey)).entities.map((e) => e.id), [open.id]);
      assert.match(ok(await h.call(protocol, M.createEntity, { entity: { type: EntityType.CONTEXT, title: "x" } }, editorKey)).ownerId, /^api_key:[0-9a-f-]{36}$/);
      const update = { entity: { id: open.id, title: "by key" }, updateMask: { paths: ["title"] } };
      assert.equal(ok(await h.call(protocol, M.updateEntity, update, adminKey)).authorId, `api_key:${adminKeyId}`);
      assert.equal(ok(await h.call(protocol, M.rollbackEntity, { entityId: open.id, version: 1 }, adminKey)).authorId, `api_key:${adminKeyId}`);
      // A key with admin on the entity may delete and restore it.
      ok(await h.call(protocol, M.deleteEntity, { entityId: open.id }, adminKey));
      const events = await h.events(t.tenantId, open.id);
      assert.equal(events.at(-1)!.actor_type, "api_key");
      ok(await h.call(protocol, M.undeleteEntity, { entityId: open.id }, adminKey));
    });
  });
}
