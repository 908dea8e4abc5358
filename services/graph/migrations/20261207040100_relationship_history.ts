import type { Migration } from "@promptcraft/db";

/**
 * Relationships as issue 12 needs them.
 *
 * - **Hard delete** (the contract's choice; docs/decisions.md): `relationship` holds the live edges
 *   only, so `deleted_at` and the partial indexes go. What was deleted stays in
 *   `relationship_revision` and the event log.
 * - **relationship_revision**: the history of every relationship with validity ranges, like
 *   content's label history: one row per state (created, each update of strength/metadata/pin),
 *   `[valid_from, valid_to)`, the current one open (`valid_to is null`), closed when the next state
 *   begins or the relationship is deleted. ResolveDependencies as of T reads the revisions valid at
 *   T, so an edge added, re-pinned or removed since does not leak into a past answer. Written by the
 *   graph service in the transaction of the change (not a trigger: a purge cascades both tables
 *   away, and a trigger updating rows the same cascade deletes would fail). A GiST exclusion forbids
 *   overlapping revisions of one relationship.
 * - **request_id** (AIP-155) for an idempotent CreateRelationship, and `created_by_api_key_id` for
 *   relationships an API key creates (it acts for no user).
 * - The seed functions `get_entity_graph` (enumerates paths: a diamond lattice explodes) and
 *   `relationship_would_cycle` (one type only: a cycle mixing depends_on and part_of passed) are
 *   dropped: the service walks the graph breadth first, expanding each node once, and checks
 *   cycles over both acyclic types under one per-tenant advisory lock (services/graph/README.md).
 */
export const relationshipHistory: Migration = {
  name: "20261207040100_relationship_history",
  async up(knex) {
    await knex.raw(`
      drop function if exists get_entity_graph(uuid, uuid, integer, text, text[]);
      drop function if exists relationship_would_cycle(uuid, uuid, uuid, text);

      create table relationship_revision (
        tenant_id uuid not null,
        relationship_id uuid not null,
        revision integer not null,
        source_id uuid not null,
        target_id uuid not null,
        relationship_type text not null,
        strength double precision not null,
        target_version integer,
        target_label text,
        valid_from timestamptz not null,
        valid_to timestamptz,
        constraint relationship_revision_pkey primary key (tenant_id, relationship_id, revision),
        constraint relationship_revision_source_fkey foreign key (tenant_id, source_id)
          references entity (tenant_id, id) on delete cascade,
        constraint relationship_revision_target_fkey foreign key (tenant_id, target_id)
          references entity (tenant_id, id) on delete cascade,
        constraint relationship_revision_type_check check (relationship_type in ('depends_on', 'part_of', 'derived_from', 'suggests')),
        constraint relationship_revision_pin_check check (target_version is null or target_label is null),
        constraint relationship_revision_range_check check (valid_to is null or valid_to > valid_from),
        constraint relationship_revision_no_overlap exclude using gist (
          tenant_id with =, relationship_id with =, tstzrange(valid_from, valid_to) with &&)
      );
      comment on table relationship_revision is
        'History of relationships: one row per state with its validity [valid_from, valid_to); the open row is the live state. Read by as-of resolution.';
      create index relationship_revision_source_idx on relationship_revision (tenant_id, source_id, valid_from);
      create index relationship_revision_target_idx on relationship_revision (tenant_id, target_id, valid_from);

      -- The seed's rows: live ones get an open revision, soft-deleted ones a closed one and leave.
      insert into relationship_revision (tenant_id, relationship_id, revision, source_id, target_id, relationship_type,
                                         strength, target_version, target_label, valid_from, valid_to)
      select tenant_id, id, 1, source_id, target_id, relationship_type, strength, target_version, target_label,
             created_at, case when deleted_at > created_at then deleted_at when deleted_at is not null then created_at + interval '1 microsecond' end
      from relationship;
      delete from relationship where deleted_at is not null;

      drop index relationship_edge_key;
      drop index relationship_target_idx;
      alter table relationship drop column deleted_at;
      alter table relationship add column request_id uuid;
      alter table relationship add column created_by_api_key_id uuid;
      alter table relationship add constraint relationship_created_by_check check (num_nonnulls(created_by, created_by_api_key_id) <= 1);
      create unique index relationship_edge_key on relationship (tenant_id, source_id, target_id, relationship_type);
      create index relationship_target_idx on relationship (tenant_id, target_id, relationship_type);
      create unique index relationship_request_id_key on relationship (tenant_id, request_id) where request_id is not null;

      alter table relationship_revision enable row level security;
      alter table relationship_revision force row level security;
      create policy relationship_revision_tenant_isolation on relationship_revision
        using (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid)
        with check (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid);
      -- History is immutable but for closing a revision.
      grant select, insert on relationship_revision to promptcraft_graph;
      grant update (valid_to) on relationship_revision to promptcraft_graph;
    `);
  },
  async down(knex) {
    await knex.raw(`
      drop index if exists relationship_request_id_key;
      alter table relationship drop constraint if exists relationship_created_by_check;
      alter table relationship drop column if exists created_by_api_key_id;
      alter table relationship drop column if exists request_id;
      alter table relationship add column deleted_at timestamptz;
      drop index if exists relationship_edge_key;
      drop index if exists relationship_target_idx;
      create unique index relationship_edge_key on relationship (tenant_id, source_id, target_id, relationship_type)
        where deleted_at is null;
      create index relationship_target_idx on relationship (tenant_id, target_id, relationship_type)
        where deleted_at is null;
      drop table if exists relationship_revision;
    `);
  },
};
