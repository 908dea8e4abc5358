import { afterAll, beforeAll, describe, test } from "vitest";
import assert from "node:assert/strict";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ConnectError } from "@connectrpc/connect";
import { AnalyticsService, type StreamUsageEventsRequestSchema } from "@promptcraft/proto/promptcraft/analytics/v1/analytics_service_pb";
import { UsageKind } from "@promptcraft/proto/promptcraft/analytics/v1/resources_pb";
import { BadRequestSchema, ErrorInfoSchema } from "@promptcraft/proto/google/rpc/error_details_pb";
import { AnalyticsHarness, TEST_SERVICE_TOKEN, usageEvent } from "./analytics-e2e-helpers.js";
import { newApiKey } from "./content-e2e-helpers.js";
import { badFields, failure, ok, PROTOCOLS, type Protocol } from "./rpc-outcomes.js";

/*
 * Usage ingest end to end (issue 11, point 1): IngestUsageEvents and StreamUsageEvents over gRPC
 * and Connect, against identity (credentials) and analytics, events read back from the database.
 */

const h = new AnalyticsHarness();
const M = AnalyticsService.method;
const DAY = 86_400_000;
const ago = (ms: number) => timestampFromDate(new Date(Date.now() - ms));

beforeAll(async () => {
  await h.start();
});
afterAll(async () => {
  await h.close();
});

type StreamMessage = MessageInitShape<typeof StreamUsageEventsRequestSchema>;

/** Sends `messages` on one StreamUsageEvents stream; `between(i)` runs before message i is sent (and may throw to break the stream). */
async function stream(protocol: Protocol, bearer: string, messages: StreamMessage[], between?: (i: number) => Promise<void>) {
  async function* requests() {
    for (const [i, m] of messages.entries()) {
      await between?.(i);
      yield m;
    }
  }
  return h.streamingClient(protocol).streamUsageEvents(requests(), { headers: { authorization: `Bearer ${bearer}` } });
}

/** Code, reason and BadRequest fields of a failed stream. */
function streamFailure(e: unknown) {
  const err = ConnectError.from(e);
  return { code: err.code, reason: err.findDetails(ErrorInfoSchema)[0]?.reason, fields: err.findDetails(BadRequestSchema)[0]?.fieldViolations.map((v) => v.field) ?? [] };
}

async function until(check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200 && !(await check()); i++) await new Promise((r) => setTimeout(r, 25));
}

describe("analytics ingest", () => {
  for (const protocol of PROTOCOLS) {
    describe(protocol, () => {
      test("IngestUsageEvents stores the events once, with the caller's tenant, user and the given fields; duplicates by id whatever their time", async () => {
        const m = await h.member();
        const events = [usageEvent({ kind: UsageKind.LLM_CALL, model: "gpt-4o-mini", inputTokens: 12, outputTokens: 30, costMicros: 4500n, latency: { seconds: 1n, nanos: 250_000_000 }, metadata: { provider: "openai" }, requestId: "r-1" }), usageEvent()];
        const first = ok(await h.call(protocol, M.ingestUsageEvents, { events }, m.token));
        assert.deepEqual([first.acceptedCount, first.duplicateCount, first.duplicateEventIds], [2n, 0n, []]);
        const { rows } = await h.db.raw<{ rows: Record<string, unknown>[] }>(
          `select tenant_id, user_id, api_key_id, kind, model, tokens_in, tokens_out, cost_usd::text as cost, latency_ms, metadata, request_id, label, entity_version
           from usage_event where id = ?`,
          [events[0]!.id],
        );
        assert.deepEqual(rows, [
          { tenant_id: m.tenantId, user_id: m.userId, api_key_id: null, kind: "llm_call", model: "gpt-4o-mini", tokens_in: 12, tokens_out: 30, cost: "0.00450000", latency_ms: 1250, metadata: { provider: "openai" }, request_id: "r-1", label: "production", entity_version: 2 },
        ]);
        // A retry of the second with another time (a day earlier), plus a new one.
        const fresh = usageEvent();
        const retry = ok(await h.call(protocol, M.ingestUsageEvents, { events: [fresh, { ...events[1]!, occurTime: ago(DAY) }, events[0]!] }, m.token));
        assert.deepEqual([retry.acceptedCount, retry.duplicateCount, retry.duplicateEventIds], [1n, 2n, [events[1]!.id, events[0]!.id]]);
        assert.equal(await h.stored(m.tenantId), 3);
      });

      test("bad input is INVALID_ARGUMENT naming each field; out-of-range times are EVENT_TIME_OUT_OF_RANGE; nothing of the batch is stored", async () => {
        const m = await h.member();
        const good = usageEvent();
        const bad = await h.call(protocol, M.ingestUsageEvents, { events: [good, usageEvent({ id: "not-a-uuid", kind: UsageKind.UNSPECIFIED, occurTime: undefined, label: "Bad Label", inputTokens: -1 })] }, m.token);
        assert.deepEqual(failure(bad), { code: "INVALID_ARGUMENT", reason: "INVALID_REQUEST" });
        assert.deepEqual(badFields(bad).sort(), ["events[1].id", "events[1].input_tokens", "events[1].kind", "events[1].label", "events[1].occur_time"]);
        const dup = await h.call(protocol, M.ingestUsageEvents, { events: [good, good] }, m.token);
        assert.deepEqual(badFields(dup), ["events"]);
        const tooMany = await h.call(protocol, M.ingestUsageEvents, { events: Array.from({ length: 1001 }, () => usageEvent()) }, m.token);
        assert.deepEqual(badFields(tooMany), ["events"]);
        const bigMetadata = await h.call(protocol, M.ingestUsageEvents, { events: [good, usageEvent({ metadata: { blob: "x".repeat(17_000) } })] }, m.token);
        assert.deepEqual([failure(bigMetadata).code, badFields(bigMetadata)], ["INVALID_ARGUMENT", ["events[1].metadata"]]);
        const old = await h.call(protocol, M.ingestUsageEvents, { events: [good, usageEvent({ occurTime: ago(30 * DAY) }), usageEvent({ occurTime: ago(-10 * 60_000) })] }, m.token);
        assert.deepEqual(failure(old), { code: "INVALID_ARGUMENT", reason: "EVENT_TIME_OUT_OF_RANGE" });
        assert.deepEqual(badFields(old), ["events[2].occur_time", "events[1].occur_time"]);
        const ancient = await h.call(protocol, M.ingestUsageEvents, { events: [usageEvent({ occurTime: { seconds: -99_999_999_999n, nanos: 0 } })] }, m.token);
        assert.deepEqual([failure(ancient).code, badFields(ancient)], ["INVALID_ARGUMENT", ["events[0].occur_time"]]);
        assert.equal(await h.stored(m.tenantId), 0, "the unary call is atomic: the good event of each refused batch is not stored");
      });

      test("StreamUsageEvents commits each message as it arrives and counts accepted, duplicates and messages", async () => {
        const m = await h.member();
        const a = [usageEvent(), usageEvent()];
        const b = [usageEvent(), { ...a[0]!, occurTime: ago(2 * DAY) }];
        const res = await stream(protocol, m.token, [{ events: a }, { events: b }, { events: [usageEvent()] }]);
        assert.deepEqual([res.acceptedCount, res.duplicateCount, res.messageCount], [4n, 1n, 3n]);
        assert.equal(await h.stored(m.tenantId), 4);
      });

      test("an invalid message ends the stream with INVALID_ARGUMENT naming the field; the messages before it stay committed", async () => {
        const m = await h.member();
        const first = [usageEvent(), usageEvent()];
        const err = await stream(protocol, m.token, [{ events: first }, { events: [usageEvent(), usageEvent({ occurTime: ago(60 * DAY) })] }, { events: [usageEvent()] }]).then(
          () => assert.fail("expected a failure"),
          streamFailure,
        );
        assert.deepEqual(err, { code: 3, reason: "EVENT_TIME_OUT_OF_RANGE", fields: ["events[1].occur_time"] });
        const err2 = await stream(protocol, m.token, [{ events: [usageEvent()] }, { events: [] }]).then(() => assert.fail("expected a failure"), streamFailure);
        assert.deepEqual(err2, { code: 3, reason: "INVALID_REQUEST", fields: ["events"] });
        assert.equal(await h.stored(m.tenantId), 3, "the first stream's first message and the second's");
      });

      test("a stream broken mid-batch and retried with the same ids loses nothing and double-counts nothing", async () => {
        const m = await h.member();
        const batches = Array.from({ length: 6 }, () => Array.from({ length: 50 }, () => usageEvent()));
        const all = batches.flat().map((e) => e.id);
        // The producer sends three messages, then its connection breaks before it closes the stream.
        const broken = await stream(protocol, m.token, batches.map((events) => ({ events })), async (i) => {
          if (i === 3) {
            await until(async () => (await h.stored(m.tenantId)) === 150);
            throw new Error("connection lost");
          }
        }).then(() => assert.fail("the stream should have failed"), (e: unknown) => ConnectError.from(e));
        assert.ok(broken instanceof ConnectError);
        // It never got a response, so it resends everything, with the same ids and (here) new times.
        const retried = await stream(protocol, m.token, batches.map((events) => ({ events: events.map((e) => ({ ...e, occurTime: timestampFromDate(new Date()) })) })));
        assert.deepEqual([retried.acceptedCount, retried.duplicateCount, retried.messageCount], [150n, 150n, 6n]);
        assert.equal(await h.stored(m.tenantId, all), 300);
        assert.equal(await h.stored(m.tenantId), 300);
      });

      test("tenancy: a member reports for its own tenant only; naming another user needs admin; an API key's events carry the key", async () => {
        const a = await h.member("editor");
        const other = await h.member("editor");
        const intoOther = await h.call(protocol, M.ingestUsageEvents, { events: [usageEvent({ tenantId: other.tenantId })] }, a.token);
        assert.deepEqual(failure(intoOther), { code: "PERMISSION_DENIED", reason: "PERMISSION_INSUFFICIENT" });
        const streamed = await stream(protocol, a.token, [{ events: [usageEvent({ tenantId: other.tenantId })] }]).then(() => assert.fail("expected a failure"), streamFailure);
        assert.equal(streamed.code, 7);
        assert.equal(await h.stored(other.tenantId), 0);
        ok(await h.call(protocol, M.ingestUsageEvents, { events: [usageEvent({ tenantId: a.tenantId })] }, a.token));

        const colleague = await h.member("viewer", a.tenantId);
        const asColleague = await h.call(protocol, M.ingestUsageEvents, { events: [usageEvent({ userId: a.userId })] }, colleague.token);
        assert.deepEqual(failure(asColleague), { code: "PERMISSION_DENIED", reason: "PERMISSION_INSUFFICIENT" });
        const admin = await h.member("admin", a.tenantId);
        const onBehalf = usageEvent({ userId: colleague.userId });
        ok(await h.call(protocol, M.ingestUsageEvents, { events: [onBehalf] }, admin.token));
        const { rows } = await h.db.raw<{ rows: { user_id: string }[] }>("select user_id from usage_event where id = ?", [onBehalf.id]);
        assert.deepEqual(rows, [{ user_id: colleague.userId }]);

        const key = await newApiKey(h.identity, admin.token, "editor");
        const byKey = usageEvent();
        ok(await h.call(protocol, M.ingestUsageEvents, { events: [byKey] }, key.secret));
        const keyRows = await h.db.raw<{ rows: { tenant_id: string; user_id: string | null; api_key_id: string }[] }>("select tenant_id, user_id, api_key_id from usage_event where id = ?", [byKey.id]);
        assert.deepEqual(keyRows.rows, [{ tenant_id: a.tenantId, user_id: null, api_key_id: key.id }]);
        const keyIntoOther = await h.call(protocol, M.ingestUsageEvents, { events: [usageEvent({ tenantId: other.tenantId })] }, key.secret);
        assert.equal(failure(keyIntoOther).code, "PERMISSION_DENIED");
      });

      test("the service credential reports for the tenant named by each event, only on ingest; without a tenant it is INVALID_ARGUMENT", async () => {
        const [t1, t2] = [await h.member(), await h.member()];
        const e1 = usageEvent({ tenantId: t1.tenantId, userId: t1.userId });
        const e2 = usageEvent({ tenantId: t2.tenantId });
        const res = ok(await h.call(protocol, M.ingestUsageEvents, { events: [e1, e2] }, TEST_SERVICE_TOKEN, { "x-promptcraft-service": "content" }));
        assert.equal(res.acceptedCount, 2n);
        assert.deepEqual([await h.stored(t1.tenantId, [e1.id]), await h.stored(t2.tenantId, [e2.id])], [1, 1]);
        const streamed = await stream(protocol, TEST_SERVICE_TOKEN, [{ events: [{ ...e1, occurTime: ago(DAY) }, usageEvent({ tenantId: t2.tenantId })] }]);
        assert.deepEqual([streamed.acceptedCount, streamed.duplicateCount], [1n, 1n]);
        const noTenant = await h.call(protocol, M.ingestUsageEvents, { events: [usageEvent()] }, TEST_SERVICE_TOKEN);
        assert.deepEqual(badFields(noTenant), ["events[0].tenant_id"]);
        const elsewhere = await h.call(protocol, M.listQuotas, {}, TEST_SERVICE_TOKEN);
        assert.deepEqual(failure(elsewhere).code, "UNAUTHENTICATED");
        const wrong = await h.call(protocol, M.ingestUsageEvents, { events: [e1] }, `${TEST_SERVICE_TOKEN}x`);
        assert.deepEqual(failure(wrong).code, "UNAUTHENTICATED");
      });
    });
  }
});
