import type { Migration } from "@promptcraft/db";

/**
 * Graph applies content's access rule inside its queries (a node, an edge or a dependency exists
 * for a caller only when the caller may view the entities involved), with the platform's
 * `entityPermissionRankSql`, as content and search do. The rule reads the live shares of an entity;
 * content owns `share`, so content grants graph exactly those columns (it already reads `entity`,
 * `entity_version` and `entity_label`). Row-level security (tenant isolation) applies as to every role.
 */
export const graphReadsAccess: Migration = {
  name: "20261207040000_graph_reads_access",
  async up(knex) {
    await knex.raw(`
      grant select (tenant_id, entity_id, grantee_type, grantee_user_id, permission, expires_at, revoked_at)
        on share to promptcraft_graph;
    `);
  },
  async down(knex) {
    await knex.raw(`
      revoke select (tenant_id, entity_id, grantee_type, grantee_user_id, permission, expires_at, revoked_at)
        on share from promptcraft_graph;
    `);
  },
};
