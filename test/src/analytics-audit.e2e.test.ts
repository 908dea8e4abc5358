import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { analyticsService } from "@promptcraft/analytics";
import { ConnectError, createServiceClient } from "@promptcraft/client";
import { loadConfig, startService, type RunningService } from "@promptcraft/platform";
import { ErrorInfoSchema, BadRequestSchema } from "@promptcraft/proto/google/rpc/error_details_pb";
import {
  AnalyticsService,
  type TailAuditEventsRequestSchema,
  type TailAuditEventsResponseSchema,
} from "@promptcraft/proto/promptcraft/analytics/v1/analytics_service_pb";
import { ActorType } from "@promptcraft/proto/promptcraft/analytics/v1/resources_pb";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { EntityType } from "@promptcraft/proto/promptcraft/content/v1/resources_pb";
import { badFields, ContentHarness, DENIED, failure, ok, PROTOCOLS, type Protocol } from "./content-e2e-helpers.js";
import { ADMIN_TOKEN, testServiceEnv } from "./identity-e2e-helpers.js";
import { unaryCall } from "./rpc-outcomes.js";

/**
 * AnalyticsService's audit log over gRPC and Connect: ListAuditEvents (filters, order, paging,
 * admin only, tenant isolation, bad input) and TailAuditEvents (replay from a time or a cursor, then
 * live in commit order, heartbeats, resume, UNAVAILABLE with the cursor on shutdown; OUT_OF_RANGE
 * CURSOR_EXPIRED for positions before events the log's retention dropped). Content writes the events,
 * as in production.
 */

const h = new ContentHarness();
let analytics: RunningService;

async function startAnalytics(): Promise<RunningService> {
  return startService(
    analyticsService,
    loadConfig(analyticsService.config, { ...testServiceEnv(), IDENTITY_URL: `http://127.0.0.1:${h.identity.grpcPort}`, AUDIT_TAIL_POLL_MS: "50", SHUTDOWN_GRACE_MS: "3000", PLATFORM_ADMIN_TOKEN: ADMIN_TOKEN }),
  );
}

beforeAll(async () => {
  await h.start();
  analytics = await startAnalytics();
});
afterAll(async () => {
  await analytics?.close();
  await h.close();
});

const A = AnalyticsService.method;

function list(protocol: Protocol, request: MessageInitShape<typeof A.listAuditEvents.input>, token: string) {
  return unaryCall(AnalyticsService, analytics, protocol, A.listAuditEvents, request, { authorization: `Bearer ${token}` });
}

async function createEntity(protocol: Protocol, token: string, title: string): Promise<string> {
  return ok(await h.call(protocol, ContentService.method.createEntity, { entity: { type: EntityType.CONTEXT, title } }, token)).id;
}

type TailItem = MessageShape<typeof TailAuditEventsResponseSchema>["item"];

/** An open tail: the items received so far, waiting for more, and how it ended. */
class Tail {
  readonly items: TailItem[] = [];
  readonly ended: Promise<ConnectError | undefined>;
  private readonly stop = new AbortController();

  constructor(server: RunningService, protocol: Protocol, request: MessageInitShape<typeof TailAuditEventsRequestSchema>, token: string) {
    const url = `http://127.0.0.1:${protocol === "grpc" ? server.grpcPort : server.connectPort}`;
    const client = createServiceClient(AnalyticsService, url, { protocol, token });
    this.ended = (async () => {
      try {
        for await (const res of client.tailAuditEvents(request, { signal: this.stop.signal })) this.items.push(res.item);
        return undefined;
      } catch (err) {
        return ConnectError.from(err);
      }
    })();
  }

  events() {
    return this.items.flatMap((i) => (i.case === "event" ? [i.value] : []));
  }

  async until(what: string, check: (t: Tail) => boolean): Promise<void> {
    // Generous: delivery waits for every older writing transaction of the cluster (other databases too).
    for (let i = 0; i < 2400 && !check(this); i++) await new Promise((r) => setTimeout(r, 25));
    if (check(this)) return;
    // Say whether the stream is still open (delivery held back) or ended (and how), and what came.
    const ended = await Promise.race([this.ended.then((err) => `ended: ${err ? `${err.code} ${err.message}` : "ok"}`), new Promise<string>((r) => setTimeout(() => r("still open"), 100))]);
    assert.fail(`timed out waiting until ${what}; stream ${ended}; items ${this.items.map((i) => i.case).join(",")}`);
  }

  async close(): Promise<void> {
    this.stop.abort();
    await this.ended;
  }
}

/** Events dropped by the event log's retention, once for both protocols, and positions around them. */
interface Expired {
  admin: string;
  /** A commit-order ListAuditEvents page token after the first dropped event. */
  pageToken: string;
  /** Cursors of the first and the last dropped event. */
  first: string;
  last: string;
  /** The end of the dropped month: the time to restart from. */
  restart: Date;
}
let expired: Promise<Expired> | undefined;

/**
 * An event partition of January 1991 holding two events of a tenant, planted as the owner with
 * transaction ids 1 and 2 (below any real one: no other test's cursor is behind them), a page token
 * taken after the first, then the partition dropped by RunPartitionMaintenance under an event-log
 * retention that reaches it (set for these runs only; other services' scheduled rounds may drop it
 * first, which records the same).
 */
function expireOldEvents(): Promise<Expired> {
  expired ??= (async () => {
    const t = await h.tenantWith(["admin"]);
    const admin = t.users[0]!.token;
    const [from, restart] = [new Date(Date.UTC(1991, 0, 1)), new Date(Date.UTC(1991, 1, 1))];
    await h.db.raw("select create_time_partitions('event', ?, ?)", [from, restart]);
    const { rows } = await h.db.raw<{ rows: { name: string }[] }>("select partition_child_name('event', ?) as name", [from]);
    const partition = rows[0]!.name;
    const { rows: planted } = await h.db.raw<{ rows: { id: string }[] }>(
      `insert into event (tenant_id, occurred_at, transaction_id, aggregate_type, event_type, actor_type)
       select ?, ?, x::text::xid8, 'entity', 'content.entity.created', 'system' from unnest(array[1, 2]) x returning id::text as id`,
      [t.tenantId, new Date(Date.UTC(1991, 0, 15))],
    );
    const page = ok(await list("grpc", { orderBy: "occur_time", pageSize: 1 }, admin));
    assert.deepEqual(page.auditEvents.map((e) => e.cursor), [`1-${planted[0]!.id}`], "the planted events come first in commit order");
    await h.db.raw("update partition_policy set retention = interval '9000 days', retention_action = 'drop' where parent_table = 'event'");
    try {
      for (let attempt = 0; ; attempt++) {
        const { rows: left } = await h.db.raw<{ rows: unknown[] }>("select 1 from pg_class where relname = ?", [partition]);
        if (left.length === 0) break;
        assert.ok(attempt < 50, `${partition} was never dropped`);
        const run = await unaryCall(AnalyticsService, analytics, "grpc", A.runPartitionMaintenance, {}, { authorization: `Bearer ${ADMIN_TOKEN}` });
        if (!run.ok) await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      await h.db.raw("update partition_policy set retention = null where parent_table = 'event'");
    }
    return { admin, pageToken: page.nextPageToken, first: `1-${planted[0]!.id}`, last: `2-${planted[1]!.id}`, restart };
  })();
  return expired;
}

for (const protocol of PROTOCOLS) {
  describe(`audit log over ${protocol}`, () => {
    test("positions before events dropped by retention are OUT_OF_RANGE CURSOR_EXPIRED with the time to restart from; later ones resume", async () => {
      const x = await expireOldEvents();
      const listed = await list(protocol, { orderBy: "occur_time", pageSize: 1, pageToken: x.pageToken }, x.admin);
      assert.deepEqual(failure(listed), { code: "OUT_OF_RANGE", reason: "CURSOR_EXPIRED" });
      assert.equal(!listed.ok && listed.metadata.restart_time, x.restart.toISOString());

      const expectExpired = async (request: MessageInitShape<typeof TailAuditEventsRequestSchema>) => {
        const err = await new Tail(analytics, protocol, request, x.admin).ended;
        assert.ok(err, "the stream failed");
        assert.deepEqual([err.code, err.findDetails(ErrorInfoSchema)[0]?.reason], [11, "CURSOR_EXPIRED"]);
        assert.match(err.rawMessage, new RegExp(`restart from a time at or after ${x.restart.toISOString()}`));
      };
      await expectExpired({ startCursor: x.first });
      await expectExpired({ startTime: timestampFromDate(new Date(Date.UTC(1991, 0, 10))) });

      // At the last dropped event, or from the end of what was dropped, nothing owed is gone.
      for (const request of [{ startCursor: x.last }, { startTime: timestampFromDate(x.restart) }]) {
        const tail = new Tail(analytics, protocol, { ...request, heartbeatInterval: { seconds: 1n } }, x.admin);
        await tail.until("a heartbeat", (t) => t.items.some((i) => i.case === "heartbeat"));
        await tail.close();
      }
    });


    test("ListAuditEvents: the tenant's events, newest first or in commit order, filtered, paged; admin only", async () => {
      const t = await h.tenantWith(["admin", "editor"]);
      const [admin, editor] = t.users as [(typeof t.users)[0], (typeof t.users)[0]];
      const before = new Date();
      const e1 = await createEntity(protocol, editor.token, "one");
      const e2 = await createEntity(protocol, editor.token, "two");
      ok(await h.call(protocol, ContentService.method.addFavorite, { entityId: e1 }, editor.token));

      const all = ok(await list(protocol, {}, admin.token)).auditEvents;
      assert.deepEqual(all.map((e) => e.eventType), ["content.favorite.added", "content.entity.created", "content.entity.created"]);
      const created = all[2]!;
      assert.equal(created.tenantId, t.tenantId);
      assert.equal(created.service, "content");
      assert.equal(created.aggregateType, "entity");
      assert.equal(created.aggregateId, e1);
      assert.equal(created.aggregateVersion, 1);
      assert.equal(created.actorType, ActorType.USER);
      assert.equal(created.actorId, editor.id);
      assert.equal(created.payload?.title, "one");
      assert.match(created.cursor, /^\d+-\d+$/);
      assert.equal(created.cursor, `${created.transactionId}-${created.id}`);

      const asc = ok(await list(protocol, { orderBy: "occur_time" }, admin.token)).auditEvents;
      assert.deepEqual(asc.map((e) => e.id), [...all].reverse().map((e) => e.id), "oldest first, in commit order");

      const filtered = async (filter: string) => ok(await list(protocol, { filter }, admin.token)).auditEvents.map((e) => [e.eventType, e.aggregateId]);
      assert.deepEqual(await filtered('event_type = "content.entity.*"'), [["content.entity.created", e2], ["content.entity.created", e1]]);
      assert.deepEqual(await filtered(`aggregate_id = "${e2}"`), [["content.entity.created", e2]]);
      assert.deepEqual(await filtered(`event_type = "content.favorite.added" OR (aggregate_id = "${e2}" AND NOT actor_type = ACTOR_TYPE_SYSTEM)`), [
        ["content.favorite.added", e1],
        ["content.entity.created", e2],
      ]);
      assert.deepEqual(await filtered(`actor_id = "${editor.id}" AND service = "content" AND occur_time >= "${before.toISOString()}"`), all.map((e) => [e.eventType, e.aggregateId]));
      assert.deepEqual(await filtered(`occur_time < "${before.toISOString()}"`), []);
      assert.deepEqual(await filtered("service = identity"), []);

      // Paged one by one: each once, same order.
      const seen: string[] = [];
      let pageToken = "";
      do {
        const page = ok(await list(protocol, { pageSize: 1, pageToken }, admin.token));
        seen.push(...page.auditEvents.map((e) => e.id));
        pageToken = page.nextPageToken;
      } while (pageToken);
      assert.deepEqual(seen, all.map((e) => e.id));

      assert.deepEqual(failure(await list(protocol, {}, editor.token)), DENIED);
    });

    test("ListAuditEvents: bad filters, orders and page tokens are INVALID_ARGUMENT naming the field; other tenants see nothing", async () => {
      const a = await h.tenantWith(["admin"]);
      const b = await h.tenantWith(["admin"]);
      const entity = await createEntity(protocol, a.users[0]!.token, "private");
      const bad = await list(protocol, { filter: 'event_type = "x" AND nope = 1' }, a.users[0]!.token);
      assert.deepEqual(failure(bad), { code: "INVALID_ARGUMENT", reason: "FILTER_INVALID" });
      assert.deepEqual(badFields(bad), ["filter"]);
      for (const filter of ["occur_time = \"2026-01-01T00:00:00Z\"", "aggregate_id = \"1\"", "(event_type = x", "actor_type = USER"]) {
        assert.deepEqual(badFields(await list(protocol, { filter }, a.users[0]!.token)), ["filter"], filter);
      }
      assert.deepEqual(badFields(await list(protocol, { orderBy: "event_type" }, a.users[0]!.token)), ["order_by"]);
      assert.deepEqual(badFields(await list(protocol, { pageSize: 5000 }, a.users[0]!.token)), ["page_size"]);
      const token = await list(protocol, { pageToken: "garbage" }, a.users[0]!.token);
      assert.deepEqual(failure(token), { code: "INVALID_ARGUMENT", reason: "PAGE_TOKEN_INVALID" });
      // A page token of one filter is refused with another.
      await createEntity(protocol, a.users[0]!.token, "second");
      const first = ok(await list(protocol, { pageSize: 1 }, a.users[0]!.token));
      assert.ok(first.nextPageToken);
      assert.deepEqual(badFields(await list(protocol, { pageSize: 1, pageToken: first.nextPageToken, filter: 'service = "content"' }, a.users[0]!.token)), ["page_token"]);
      // Tenant B's admin, even filtering on A's aggregate, sees nothing of A.
      assert.deepEqual(ok(await list(protocol, {}, b.users[0]!.token)).auditEvents, []);
      assert.deepEqual(ok(await list(protocol, { filter: `aggregate_id = "${entity}"` }, b.users[0]!.token)).auditEvents, []);
    });

    test("TailAuditEvents: replays from a time, then follows live in commit order, with heartbeats; resumes after a cursor", async () => {
      const t = await h.tenantWith(["admin", "editor"]);
      const [admin, editor] = t.users as [(typeof t.users)[0], (typeof t.users)[0]];
      const other = await h.tenantWith(["admin"]);
      // After the tenants' set-up (their own events must not fall inside the replayed range).
      const start = new Date();
      const e1 = await createEntity(protocol, editor.token, "before the tail");
      const tail = new Tail(analytics, protocol, { startTime: timestampFromDate(start), heartbeatInterval: { seconds: 1n } }, admin.token);
      const otherTail = new Tail(analytics, protocol, { startTime: timestampFromDate(start) }, other.users[0]!.token);
      const filtered = new Tail(analytics, protocol, { startTime: timestampFromDate(start), filter: 'event_type = "content.favorite.*"' }, admin.token);
      try {
        await tail.until("the replayed event", (x) => x.events().length === 1);
        assert.equal(tail.events()[0]!.aggregateId, e1);
        const e2 = await createEntity(protocol, editor.token, "while tailing");
        ok(await h.call(protocol, ContentService.method.addFavorite, { entityId: e2 }, editor.token));
        await tail.until("the live events", (x) => x.events().length === 3);
        assert.deepEqual(tail.events().map((e) => [e.eventType, e.aggregateId]), [
          ["content.entity.created", e1],
          ["content.entity.created", e2],
          ["content.favorite.added", e2],
        ]);
        await tail.until("a heartbeat while idle", (x) => x.items.some((i) => i.case === "heartbeat"));
        const beat = tail.items.find((i) => i.case === "heartbeat")!;
        assert.equal(beat.case, "heartbeat");
        assert.match(beat.value.cursor, /^\d+-\d+$/);
        await filtered.until("the favorite", (x) => x.events().length === 1);
        assert.equal(filtered.events()[0]!.eventType, "content.favorite.added");
        assert.equal(otherTail.events().length, 0, "another tenant's tail sees nothing of this one");
      } finally {
        await Promise.all([tail.close(), otherTail.close(), filtered.close()]);
      }
      // Resume after the first event's cursor: the two later ones, nothing twice.
      const resumed = new Tail(analytics, protocol, { startCursor: tail.events()[0]!.cursor }, admin.token);
      try {
        await resumed.until("the events after the cursor", (x) => x.events().length === 2);
        assert.deepEqual(resumed.events().map((e) => e.id), tail.events().slice(1).map((e) => e.id));
      } finally {
        await resumed.close();
      }
      // Without a start: new events only.
      const fresh = new Tail(analytics, protocol, { heartbeatInterval: { seconds: 1n } }, admin.token);
      try {
        await fresh.until("the first heartbeat", (x) => x.items.length > 0);
        const e3 = await createEntity(protocol, editor.token, "after");
        await fresh.until("only the new event", (x) => x.events().length === 1);
        assert.equal(fresh.events()[0]!.aggregateId, e3);
      } finally {
        await fresh.close();
      }
    });

    test("TailAuditEvents: bad input and roles fail before streaming", async () => {
      const t = await h.tenantWith(["admin", "editor"]);
      const expectFailure = async (request: MessageInitShape<typeof TailAuditEventsRequestSchema>, token: string) => {
        const tail = new Tail(analytics, protocol, request, token);
        const err = await tail.ended;
        assert.ok(err, "the stream failed");
        return { code: err.code, reason: err.findDetails(ErrorInfoSchema)[0]?.reason, fields: err.findDetails(BadRequestSchema)[0]?.fieldViolations.map((v) => v.field) ?? [] };
      };
      const admin = t.users[0]!.token;
      assert.deepEqual(await expectFailure({ filter: 'occur_time > "2026-01-01T00:00:00Z"' }, admin), { code: 3, reason: "FILTER_INVALID", fields: ["filter"] });
      assert.deepEqual(await expectFailure({ startCursor: "12" }, admin), { code: 3, reason: "INVALID_REQUEST", fields: ["start_cursor"] });
      assert.deepEqual((await expectFailure({ heartbeatInterval: { seconds: 0n } }, admin)).fields, ["heartbeat_interval"]);
      assert.deepEqual((await expectFailure({}, t.users[1]!.token)).reason, "PERMISSION_INSUFFICIENT");
    });

    test("TailAuditEvents: a server shutting down ends the stream with UNAVAILABLE and the cursor to resume from", async () => {
      const t = await h.tenantWith(["admin", "editor"]);
      const server = await startAnalytics();
      const tail = new Tail(server, protocol, { startTime: timestampFromDate(new Date(Date.now() - 1000)), heartbeatInterval: { seconds: 1n } }, t.users[0]!.token);
      const id = await createEntity(protocol, t.users[1]!.token, randomUUID());
      // The tenant's own set-up events may fall inside the replayed second too: wait for this one.
      await tail.until("the event", (x) => x.events().some((e) => e.aggregateId === id));
      await server.close();
      const err = await tail.ended;
      assert.ok(err, "the stream ended with an error");
      assert.equal(err.code, 14, `UNAVAILABLE, got ${err.code} ${err.message}`);
      const cursor = err.findDetails(ErrorInfoSchema)[0]?.metadata.cursor;
      assert.match(cursor ?? "", /^\d+-\d+$/);
      // The cursor covers the delivered event: resuming from it on a live replica gives nothing old.
      const resumed = new Tail(analytics, protocol, { startCursor: cursor!, heartbeatInterval: { seconds: 1n } }, t.users[0]!.token);
      try {
        await resumed.until("a heartbeat", (x) => x.items.length > 0);
        assert.equal(resumed.events().length, 0);
      } finally {
        await resumed.close();
      }
    });
  });
}
