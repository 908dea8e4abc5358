import type { Migration } from "@promptcraft/db";

/**
 * `entity_version.request_id`: the AIP-155 request id of the UpdateEntity / RollbackEntity call
 * that wrote the version, so a retry of that call (same request id) returns the version it wrote
 * instead of failing on the etag the first call changed. Unique per entity when set.
 */
export const addVersionRequestId: Migration = {
  name: "20261125120000_add_version_request_id",
  async up(knex) {
    await knex.raw(`
      alter table entity_version add column request_id text;
      alter table entity_version add constraint entity_version_request_id_check
        check (request_id is null or char_length(request_id) between 1 and 200);
      create unique index entity_version_request_id_key on entity_version (tenant_id, entity_id, request_id)
        where request_id is not null;
      comment on column entity_version.request_id is
        'AIP-155 request id of the Update/Rollback call that wrote this version, for idempotent retries.';
    `);
  },
  async down(knex) {
    await knex.raw(`
      drop index if exists entity_version_request_id_key;
      alter table entity_version drop column if exists request_id;
    `);
  },
};
