import type { Migration } from "@promptcraft/db";

/**
 * Graph's tables (brief §4.5): relationship (typed, weighted edges between entities; a target may be
 * pinned to a version or float with a label; soft-deleted) and suggestion.
 *
 * The unique index on live edges (tenant_id, source_id, target_id, relationship_type) also serves
 * outbound traversal (it starts with tenant_id, source_id); relationship_target_idx serves inbound
 * traversal and impact analysis. Cycles of depends_on / part_of are refused by the graph service
 * (with `relationship_would_cycle` under a per-tenant advisory lock, see the functions migration):
 * a recursive property cannot be a table constraint.
 */
export const createGraphTables: Migration = {
  name: "20261125093000_create_graph_tables",
  async up(knex) {
    await knex.raw(`
      create table relationship (
        tenant_id uuid not null,
        id uuid not null default gen_random_uuid(),
        source_id uuid not null,
        target_id uuid not null,
        relationship_type text not null,
        strength double precision not null default 1,
        metadata jsonb not null default '{}'::jsonb,
        target_version integer,
        target_label text,
        created_by uuid,
        created_at timestamptz not null default now(),
        updated_at timestamptz not null default now(),
        deleted_at timestamptz,
        row_version bigint not null default 1,
        constraint relationship_pkey primary key (tenant_id, id),
        constraint relationship_source_fkey foreign key (tenant_id, source_id)
          references entity (tenant_id, id) on delete cascade,
        constraint relationship_target_fkey foreign key (tenant_id, target_id)
          references entity (tenant_id, id) on delete cascade,
        constraint relationship_target_version_fkey foreign key (tenant_id, target_id, target_version)
          references entity_version (tenant_id, entity_id, version) on delete cascade,
        constraint relationship_created_by_fkey foreign key (tenant_id, created_by)
          references app_user (tenant_id, id) on delete set null (created_by),
        constraint relationship_type_check check (relationship_type in ('depends_on', 'part_of', 'derived_from', 'suggests')),
        constraint relationship_strength_check check (strength >= 0 and strength <= 1),
        constraint relationship_not_self_check check (source_id <> target_id),
        constraint relationship_pin_check check (target_version is null or target_label is null),
        constraint relationship_target_label_check check (target_label is null or target_label ~ '^[a-z0-9_.-]{1,36}$'),
        constraint relationship_metadata_check check (jsonb_typeof(metadata) = 'object'),
        constraint relationship_row_version_check check (row_version >= 1)
      );
      comment on column relationship.target_version is 'Pinned target version; null = floating (target_label, or latest when both are null).';
      comment on column relationship.target_label is 'Floating target: the version this label points to when resolved (''latest'' allowed).';
      create unique index relationship_edge_key on relationship (tenant_id, source_id, target_id, relationship_type)
        where deleted_at is null;
      create index relationship_target_idx on relationship (tenant_id, target_id, relationship_type)
        where deleted_at is null;

      create table suggestion (
        tenant_id uuid not null,
        id uuid not null default gen_random_uuid(),
        entity_id uuid not null,
        suggested_entity_id uuid not null,
        user_id uuid,
        kind text not null,
        score double precision not null,
        reason text not null default '',
        status text not null default 'open',
        metadata jsonb not null default '{}'::jsonb,
        created_at timestamptz not null default now(),
        decided_at timestamptz,
        decided_by uuid,
        constraint suggestion_pkey primary key (tenant_id, id),
        constraint suggestion_entity_fkey foreign key (tenant_id, entity_id)
          references entity (tenant_id, id) on delete cascade,
        constraint suggestion_suggested_entity_fkey foreign key (tenant_id, suggested_entity_id)
          references entity (tenant_id, id) on delete cascade,
        constraint suggestion_user_fkey foreign key (tenant_id, user_id) references app_user (tenant_id, id) on delete cascade,
        constraint suggestion_decided_by_fkey foreign key (tenant_id, decided_by) references app_user (tenant_id, id),
        constraint suggestion_kind_check check (kind in ('similar', 'co_used', 'dependency', 'model')),
        constraint suggestion_score_check check (score >= 0 and score <= 1),
        constraint suggestion_status_check check (status in ('open', 'accepted', 'dismissed')),
        constraint suggestion_decided_check check ((status = 'open') = (decided_at is null)),
        constraint suggestion_not_self_check check (entity_id <> suggested_entity_id),
        constraint suggestion_metadata_check check (jsonb_typeof(metadata) = 'object'),
        constraint suggestion_reason_check check (char_length(reason) <= 1000)
      );
      create unique index suggestion_pair_key on suggestion (tenant_id, entity_id, suggested_entity_id, kind, user_id)
        nulls not distinct;
      create index suggestion_open_idx on suggestion (tenant_id, entity_id, score desc) where status = 'open';

      alter table relationship enable row level security;
      alter table relationship force row level security;
      create policy relationship_tenant_isolation on relationship
        using (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid)
        with check (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid);

      alter table suggestion enable row level security;
      alter table suggestion force row level security;
      create policy suggestion_tenant_isolation on suggestion
        using (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid)
        with check (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid);

      grant select, insert, update, delete on relationship, suggestion to promptcraft_graph;
    `);
  },
  async down(knex) {
    await knex.raw(`
      drop table if exists suggestion;
      drop table if exists relationship;
    `);
  },
};
