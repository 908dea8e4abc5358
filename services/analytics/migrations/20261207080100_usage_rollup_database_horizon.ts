import type { Knex, Migration } from "@promptcraft/db";

/**
 * `refresh_usage_rollup()` rolls up the `usage_event` rows below the horizon, which was
 * `pg_snapshot_xmin(pg_current_snapshot())`: the oldest transaction of the whole cluster, so a long
 * transaction in another database on the same server held the rollups back (the tail grew, summaries
 * slowed). Core's `event_log_horizon()` (20261207060000_per_database_event_horizon) is the same rule
 * for this database only — the snapshot's in-progress xids, leaving out only those known to run in
 * another database — and `usage_event` is written by this database's transactions alone.
 *
 * The function is redefined from its stored definition with that one expression swapped, so it stays
 * identical otherwise (body, owner promptcraft_system, grants and comment survive `create or replace`);
 * `down` swaps it back. The owner, promptcraft_system (the function is a security
 * definer), already may execute `event_log_horizon()` (core grants it).
 */
const CLUSTER_HORIZON = "pg_snapshot_xmin(pg_current_snapshot())";
const DATABASE_HORIZON = "public.event_log_horizon()";
const CLUSTER_COMMENT = "-- Below the oldest running transaction every row is final (the event-log reader's rule).";
const DATABASE_COMMENT = "-- Below the oldest transaction of this database every row is final (the event-log reader's rule).";

async function swapHorizon(knex: Knex, from: [string, string], to: [string, string]): Promise<void> {
  const { rows } = await knex.raw<{ rows: { definition: string }[] }>(
    "select pg_get_functiondef('public.refresh_usage_rollup()'::regprocedure) as definition",
  );
  const definition = rows[0]!.definition;
  if (definition.split(from[0]).length !== 2) {
    throw new Error(`refresh_usage_rollup(): expected exactly one ${from[0]} in its definition`);
  }
  await knex.raw(definition.replace(from[0], to[0]).replace(from[1], to[1]));
}

export const usageRollupDatabaseHorizon: Migration = {
  name: "20261207080100_usage_rollup_database_horizon",
  async up(knex) {
    await swapHorizon(knex, [CLUSTER_HORIZON, CLUSTER_COMMENT], [DATABASE_HORIZON, DATABASE_COMMENT]);
  },
  async down(knex) {
    await swapHorizon(knex, [DATABASE_HORIZON, DATABASE_COMMENT], [CLUSTER_HORIZON, CLUSTER_COMMENT]);
  },
};
