import type { Migration } from "../migrate.js";

/**
 * Extensions every slice relies on. All four exist on PostgreSQL 15 (contrib + pgvector) and in the
 * embedded engine (PGlite contrib + @electric-sql/pglite-pgvector).
 *
 * - `vector`: embeddings (search slice). Not a trusted extension: on a managed server an administrator
 *   creates it once, after which `if not exists` makes this a no-op.
 * - `btree_gist`: equality on uuid/text inside the GiST exclusion constraints that forbid overlapping
 *   validity periods (content slice).
 * - `pg_trgm`: trigram index for title search (content slice).
 * - `pgcrypto`: `digest()` for hashing in SQL (ad-hoc checks of content hashes, scripts).
 */
export const createExtensions: Migration = {
  name: "20261125090000_create_extensions",
  async up(knex) {
    await knex.raw(`
      create extension if not exists pgcrypto;
      create extension if not exists btree_gist;
      create extension if not exists pg_trgm;
      create extension if not exists vector;
    `);
  },
  async down(knex) {
    // Reached only when every slice has been rolled back, so nothing of ours depends on them any more.
    await knex.raw(`
      drop extension if exists vector;
      drop extension if exists pg_trgm;
      drop extension if exists btree_gist;
      drop extension if exists pgcrypto;
    `);
  },
};
