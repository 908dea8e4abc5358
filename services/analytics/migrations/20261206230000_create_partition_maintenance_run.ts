import type { Migration } from "@promptcraft/db";

/**
 * `partition_maintenance_run`: per partitioned table, when partition maintenance last succeeded and
 * the error of the last failed run, so GetPartitionMaintenanceStatus answers the same on every
 * replica (the scheduled job runs on whichever replica takes the advisory lock). Not tenant data: no
 * tenant_id and no row-level security; only promptcraft_analytics reads and writes it.
 */
export const createPartitionMaintenanceRun: Migration = {
  name: "20261206230000_create_partition_maintenance_run",
  async up(knex) {
    await knex.raw(`
      create table partition_maintenance_run (
        parent_table text not null,
        last_success_at timestamptz,
        last_error_at timestamptz,
        last_error text not null default '',
        constraint partition_maintenance_run_pkey primary key (parent_table),
        constraint partition_maintenance_run_parent_table_fkey foreign key (parent_table)
          references partition_policy (parent_table) on delete cascade,
        constraint partition_maintenance_run_last_error_check check (char_length(last_error) <= 2000)
      );
      comment on table partition_maintenance_run is
        'Outcome of the last partition maintenance per partitioned table (last_error empty after a success).';
      grant select, insert, update on partition_maintenance_run to promptcraft_analytics;
    `);
  },
  async down(knex) {
    await knex.raw(`drop table if exists partition_maintenance_run;`);
  },
};
