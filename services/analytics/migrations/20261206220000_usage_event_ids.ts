import { tenantIsolationSql, type Migration } from "@promptcraft/db";

/**
 * Idempotent usage ingest per event id, whatever `occur_time` a retry carries (issue 11, point 1).
 *
 * `usage_event`'s primary key must hold its partition key (`occurred_at`), so it cannot make an id
 * unique across days, and its first migration's comment said a re-sent id with another time is a
 * new event. The contract says otherwise (idempotent per id; the contract wins): `usage_event_id`,
 * a plain table keyed by (tenant_id, id), is written in the same statement as the event
 * (`insert … on conflict do nothing returning id` in a CTE, then the events of the ids it
 * returned), so a retry is a duplicate for as long as its id row exists. Rows are deleted with
 * their day's partition, past the usage retention (partition maintenance); until then a
 * duplicate is recognised.
 *
 * Also adds `usage_event.request_id` (the contract's `UsageEvent.request_id`, for correlation),
 * and restates the table's comment.
 */
export const usageEventIds: Migration = {
  name: "20261206220000_usage_event_ids",
  async up(knex) {
    await knex.raw(`
      create table usage_event_id (
        tenant_id uuid not null,
        id uuid not null,
        occurred_at timestamptz not null,
        constraint usage_event_id_pkey primary key (tenant_id, id)
      );
      comment on table usage_event_id is
        'Idempotency keys of usage_event: one row per (tenant_id, id) ever stored, with the occurred_at it was stored under. Written with the event in one statement; pruned with the partition of its day.';
      create index usage_event_id_time_idx on usage_event_id (occurred_at);
      ${tenantIsolationSql("usage_event_id")}
      grant select, insert on usage_event_id to promptcraft_analytics;

      alter table usage_event add column request_id text;
      alter table usage_event add constraint usage_event_request_id_check
        check (request_id is null or char_length(request_id) <= 128);

      comment on table usage_event is
        'Usage events, partitioned by UTC day. Idempotency key = (tenant_id, id) alone, held by usage_event_id (a retry with another occurred_at is still a duplicate).';
    `);
  },
  async down(knex) {
    await knex.raw(`
      comment on table usage_event is
        'Usage events, partitioned by UTC day. Idempotency key = (tenant_id, id, occurred_at): insert ... on conflict on constraint usage_event_pkey do nothing.';
      alter table usage_event drop constraint if exists usage_event_request_id_check;
      alter table usage_event drop column if exists request_id;
      drop table if exists usage_event_id;
    `);
  },
};
