import type { Migration } from "@promptcraft/db";

/**
 * Co-usage (GetEntityCoUsage, what graph suggests relationships from): the events of one request
 * are found by `(tenant_id, request_id)` near the time of a use of the entity, one index probe per
 * request on the partitions of that time. Partial: events without a request id or an entity never
 * count. Created on the partitioned table, so every partition (and every future one) has it.
 */
export const usageEventRequestIdx: Migration = {
  name: "20261207180100_usage_event_request_idx",
  async up(knex) {
    await knex.raw(`
      create index usage_event_request_idx on usage_event (tenant_id, request_id, occurred_at) include (entity_id)
        where request_id is not null and entity_id is not null;
    `);
  },
  async down(knex) {
    await knex.raw("drop index if exists usage_event_request_idx");
  },
};
