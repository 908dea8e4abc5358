import type { Migration } from "@promptcraft/db";

/**
 * What the suggestion API (issue 12.6) needs beyond the seed's table: the relationship type
 * accepting creates by default (`relationship_type`), the relationship it created
 * (`relationship_id`, set null when that relationship is deleted later: the suggestion stays
 * accepted), and the reason given on dismissal. Pending suggestions are listed by score per tenant,
 * not only per entity: `suggestion_open_tenant_idx`.
 */
export const suggestionDecisions: Migration = {
  name: "20261207040200_suggestion_decisions",
  async up(knex) {
    await knex.raw(`
      alter table suggestion add column relationship_type text not null default 'suggests';
      alter table suggestion add constraint suggestion_relationship_type_check
        check (relationship_type in ('depends_on', 'part_of', 'derived_from', 'suggests'));
      alter table suggestion add column relationship_id uuid;
      alter table suggestion add constraint suggestion_relationship_fkey foreign key (tenant_id, relationship_id)
        references relationship (tenant_id, id) on delete set null (relationship_id);
      alter table suggestion add column dismiss_reason text not null default '';
      alter table suggestion add constraint suggestion_dismiss_reason_check check (char_length(dismiss_reason) <= 1000);
      create index suggestion_open_tenant_idx on suggestion (tenant_id, score desc, id) where status = 'open';
    `);
  },
  async down(knex) {
    await knex.raw(`
      drop index if exists suggestion_open_tenant_idx;
      alter table suggestion drop column if exists dismiss_reason;
      alter table suggestion drop column if exists relationship_id;
      alter table suggestion drop column if exists relationship_type;
    `);
  },
};
