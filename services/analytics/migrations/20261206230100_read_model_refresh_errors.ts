import type { Migration } from "@promptcraft/db";

/**
 * Failed refreshes of the read models are recorded too (`read_model_refresh.last_error`,
 * `last_error_at`), so ListReadModels can say FAILED on every replica: `refresh_read_model` records
 * only successes (a failed refresh rolls its own bookkeeping back), so analytics writes the error
 * itself, in a transaction of its own, and the next success clears it.
 */
export const readModelRefreshErrors: Migration = {
  name: "20261206230100_read_model_refresh_errors",
  async up(knex) {
    await knex.raw(`
      alter table read_model_refresh
        add column last_error text not null default '',
        add column last_error_at timestamptz,
        add constraint read_model_refresh_last_error_check check (char_length(last_error) <= 2000);
      grant update (last_error, last_error_at) on read_model_refresh to promptcraft_analytics;
    `);
  },
  async down(knex) {
    await knex.raw(`
      revoke update (last_error, last_error_at) on read_model_refresh from promptcraft_analytics;
      alter table read_model_refresh drop column last_error_at, drop column last_error;
    `);
  },
};
