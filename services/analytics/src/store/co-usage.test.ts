import { afterAll, beforeAll, describe, test } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { withTenant, type Knex } from "@promptcraft/db";
import { createTenant, openTestKnex } from "@promptcraft/testing";
import { coUsedEntities } from "./co-usage.js";
import { insertUsageEvents, type NewUsageEvent } from "./usage.js";
import { usageEvent } from "./usage-event-fixture.js";

/*
 * Store tier: co-usage on the test runner's database as promptcraft_analytics under row-level
 * security — what counts as one request (its id, within an hour), the tenant's events only.
 */

let knex: Knex;

beforeAll(() => {
  knex = openTestKnex("analytics-store-co-usage");
});
afterAll(async () => {
  await knex.destroy();
});

const HOUR = 3_600_000;
const t0 = new Date(Date.now() - 24 * HOUR);
const at = (ms: number) => new Date(t0.getTime() + ms);

const insert = (tenantId: string, events: NewUsageEvent[]) => withTenant(knex, { service: "analytics", tenantId }, (trx) => insertUsageEvents(trx, tenantId, events));
const coUsed = (tenantId: string, entityId: string, limit = 10) =>
  withTenant(knex, { service: "analytics", tenantId }, (trx) => coUsedEntities(trx, tenantId, entityId, new Date(t0.getTime() - HOUR), limit));

describe("store/co-usage", () => {
  test("a request is its id within an hour of the entity's use; searches and embeddings are no use; other tenants' events with the same id never count", async () => {
    const [tenant, stranger] = [await createTenant(knex), await createTenant(knex)];
    const [entity, near, far, keyless] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
    const [r1, r2] = [randomUUID(), randomUUID()];
    await insert(tenant, [
      usageEvent({ entityId: entity, requestId: r1, occurredAt: at(0) }),
      usageEvent({ entityId: near, requestId: r1, occurredAt: at(30 * 60_000) }),
      usageEvent({ entityId: far, requestId: r1, occurredAt: at(2 * HOUR) }), // the same id, hours later: another request
      usageEvent({ entityId: entity, requestId: r2, occurredAt: at(HOUR) }),
      usageEvent({ entityId: near, requestId: r2, occurredAt: at(HOUR) }),
      usageEvent({ entityId: keyless, requestId: r2, occurredAt: at(HOUR), kind: "view" }),
      usageEvent({ entityId: entity, occurredAt: at(HOUR) }), // no request id
      usageEvent({ entityId: entity, requestId: randomUUID(), occurredAt: at(HOUR), kind: "search" }), // a search from it: no use
      usageEvent({ entityId: far, requestId: r2, occurredAt: at(HOUR), kind: "embedding" }), // background work: no use
      usageEvent({ entityId: null, requestId: r2, occurredAt: at(HOUR) }), // no entity
    ]);
    await insert(stranger, [usageEvent({ entityId: randomUUID(), requestId: r1, occurredAt: at(0) })]);

    const found = await coUsed(tenant, entity);
    assert.equal(found.requestCount, 2);
    assert.deepEqual(
      found.entities.map((e) => [e.entityId, e.sharedRequests]),
      [
        [near, 2],
        [keyless, 1],
      ],
      "most shared first; the same id two hours later is not the request",
    );
    assert.equal(found.entities[0]!.lastSharedAt.getTime(), at(HOUR).getTime());
    assert.deepEqual((await coUsed(tenant, entity, 1)).entities.map((e) => e.entityId), [near], "at most `limit`");
    assert.deepEqual(await coUsed(tenant, randomUUID()), { requestCount: 0, entities: [] }, "an entity never used");
    assert.deepEqual(await coUsed(stranger, entity), { requestCount: 0, entities: [] }, "another tenant sees nothing of it");
  });
});
