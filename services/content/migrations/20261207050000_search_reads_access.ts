import type { Migration } from "@promptcraft/db";

/**
 * Search applies content's access rule inside its queries (a result list never holds an entity the
 * caller could not GetEntity, and a page is full whenever enough visible matches exist), and filters
 * by "label present". Content owns these tables, so content grants the reads, column by column,
 * exactly what the rule and the filter look at: the live shares of an entity (who, which
 * permission, expiry, revocation), and which labels point at which version now. Row-level security
 * (tenant isolation) applies as to every role.
 */
export const searchReadsAccess: Migration = {
  name: "20261207050000_search_reads_access",
  async up(knex) {
    await knex.raw(`
      grant select (tenant_id, entity_id, grantee_type, grantee_user_id, permission, expires_at, revoked_at)
        on share to promptcraft_search;
      grant select (tenant_id, entity_id, label, version, valid_to) on entity_label to promptcraft_search;
    `);
  },
  async down(knex) {
    await knex.raw(`
      revoke select (tenant_id, entity_id, grantee_type, grantee_user_id, permission, expires_at, revoked_at)
        on share from promptcraft_search;
      revoke select (tenant_id, entity_id, label, version, valid_to) on entity_label from promptcraft_search;
    `);
  },
};
