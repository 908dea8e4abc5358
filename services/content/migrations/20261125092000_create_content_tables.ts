import type { Migration } from "@promptcraft/db";

/**
 * Content's tables (brief §4.3-4.4): entity (stable identity), entity_version (every version,
 * immutable), entity_label (movable, temporal pointers to versions), favorite, share.
 *
 * Invariants the database enforces, whatever the code does:
 * - one current version per entity: unique (tenant_id, entity_id) where valid_to is null;
 * - no overlapping validity: GiST exclusion on (tenant_id =, entity_id =, tstzrange(valid_from, valid_to) &&);
 * - gap-free, fork-free numbering: version >= 1; previous_version = version - 1 (null for 1); the
 *   foreign key (tenant_id, entity_id, previous_version, valid_from) -> (tenant_id, entity_id, version,
 *   valid_to) makes version n impossible without version n-1 AND makes n start exactly when n-1 ended
 *   (a contiguous timeline: "as of T" always finds exactly one version after creation). Fork-free
 *   follows: version is the primary key and previous_version is a function of it, so no two versions
 *   can share a predecessor (a unique index on previous_version would be redundant);
 * - history is immutable: promptcraft_content may UPDATE only entity_version.valid_to (closing a
 *   version) and entity_label.valid_to, and may not DELETE either (they go with their entity when
 *   it is purged, by cascade);
 * - a label has one current target (unique where valid_to is null) and no overlapping history (GiST
 *   exclusion); its name matches [a-z0-9_.-]{1,36} and is not the implicit `latest`.
 */
export const createContentTables: Migration = {
  name: "20261125092000_create_content_tables",
  async up(knex) {
    await knex.raw(`
      create function entity_tags_valid(p_tags text[])
      returns boolean
      language sql immutable strict parallel safe
      set search_path = pg_catalog
      as $fn$
        select cardinality(p_tags) <= 64
           and array_position(p_tags, null) is null
           and coalesce((select bool_and(t ~ '^[^[:space:][:cntrl:]]([^[:cntrl:]]{0,62}[^[:space:][:cntrl:]]){0,1}$')
                         from unnest(p_tags) as t), true)
      $fn$;
      comment on function entity_tags_valid(text[]) is
        'Tags: at most 64, no nulls, each 1-64 characters without control characters or surrounding spaces.';

      create table entity (
        tenant_id uuid not null,
        id uuid not null default gen_random_uuid(),
        entity_type text not null,
        owner_id uuid not null,
        current_version integer not null default 1,
        row_version bigint not null default 1,
        request_id text,
        created_at timestamptz not null default now(),
        updated_at timestamptz not null default now(),
        deleted_at timestamptz,
        deleted_by uuid,
        purge_time timestamptz,
        constraint entity_pkey primary key (tenant_id, id),
        constraint entity_tenant_fkey foreign key (tenant_id) references tenant (id) on delete cascade,
        constraint entity_owner_fkey foreign key (tenant_id, owner_id) references app_user (tenant_id, id),
        constraint entity_deleted_by_fkey foreign key (tenant_id, deleted_by) references app_user (tenant_id, id),
        constraint entity_type_check check (entity_type in ('context', 'template', 'workflow', 'library')),
        constraint entity_current_version_check check (current_version >= 1),
        constraint entity_row_version_check check (row_version >= 1),
        constraint entity_request_id_check check (request_id is null or char_length(request_id) between 1 and 200),
        constraint entity_deleted_check check (deleted_at is not null or (deleted_by is null and purge_time is null)),
        constraint entity_purge_time_check check (purge_time is null or purge_time >= deleted_at)
      );
      comment on column entity.current_version is
        'Number of the version whose valid_to is null; equals the number of versions (gap-free).';
      comment on column entity.row_version is
        'Etag (AIP-154): incremented by every change of the entity or of its versions/labels.';
      comment on column entity.request_id is 'AIP-155 request id of the create call, for idempotent retries.';
      create unique index entity_request_id_key on entity (tenant_id, request_id) where request_id is not null;
      create index entity_list_idx on entity (tenant_id, entity_type, updated_at desc, id) where deleted_at is null;
      create index entity_recent_idx on entity (tenant_id, updated_at desc, id) where deleted_at is null;
      create index entity_owner_idx on entity (tenant_id, owner_id);
      create index entity_deleted_idx on entity (tenant_id, purge_time) where deleted_at is not null;

      create table entity_version (
        tenant_id uuid not null,
        entity_id uuid not null,
        version integer not null,
        previous_version integer,
        title text not null,
        description text not null default '',
        status text not null default 'draft',
        visibility text not null default 'private',
        content jsonb not null default '{}'::jsonb,
        tags text[] not null default '{}'::text[],
        metadata jsonb not null default '{}'::jsonb,
        commit_message text not null default '',
        author_id uuid not null,
        content_hash text not null,
        rolled_back_from integer,
        valid_from timestamptz not null default now(),
        valid_to timestamptz,
        search tsvector generated always as (
          setweight(to_tsvector('english'::regconfig, title), 'A')
          || setweight(to_tsvector('english'::regconfig, description), 'B')
          || setweight(array_to_tsvector(tags), 'C')
          || setweight(jsonb_to_tsvector('english'::regconfig, content, '["string"]'::jsonb), 'D')
        ) stored,
        constraint entity_version_pkey primary key (tenant_id, entity_id, version),
        constraint entity_version_chain_key unique (tenant_id, entity_id, version, valid_to),
        constraint entity_version_entity_fkey foreign key (tenant_id, entity_id)
          references entity (tenant_id, id) on delete cascade,
        constraint entity_version_previous_fkey foreign key (tenant_id, entity_id, previous_version, valid_from)
          references entity_version (tenant_id, entity_id, version, valid_to),
        constraint entity_version_rolled_back_from_fkey foreign key (tenant_id, entity_id, rolled_back_from)
          references entity_version (tenant_id, entity_id, version),
        constraint entity_version_author_fkey foreign key (tenant_id, author_id) references app_user (tenant_id, id),
        constraint entity_version_version_check check (version >= 1),
        constraint entity_version_previous_check check (
          (version = 1 and previous_version is null) or (version > 1 and previous_version = version - 1)),
        constraint entity_version_rolled_back_from_check check (rolled_back_from is null or rolled_back_from < version),
        constraint entity_version_validity_check check (valid_to is null or valid_to > valid_from),
        constraint entity_version_no_overlap exclude using gist (
          tenant_id with =, entity_id with =, tstzrange(valid_from, valid_to) with &&),
        constraint entity_version_title_check check (char_length(btrim(title)) between 1 and 500),
        constraint entity_version_description_check check (char_length(description) <= 10000),
        constraint entity_version_status_check check (status in ('draft', 'published', 'deprecated', 'archived')),
        constraint entity_version_visibility_check check (visibility in ('private', 'tenant')),
        constraint entity_version_content_check check (jsonb_typeof(content) = 'object'),
        constraint entity_version_metadata_check check (jsonb_typeof(metadata) = 'object'),
        constraint entity_version_tags_check check (entity_tags_valid(tags)),
        constraint entity_version_commit_message_check check (char_length(commit_message) <= 2000),
        constraint entity_version_content_hash_check check (content_hash ~ '^[0-9a-f]{64}$')
      );
      comment on column entity_version.content_hash is
        'Lowercase hex SHA-256 of the canonical version payload (title, description, status, visibility, content, tags, metadata); equal hash = unchanged = no new version.';
      comment on column entity_version.search is 'Full text: title (A), description (B), tags (C), string values of content (D).';
      create unique index entity_version_current_key on entity_version (tenant_id, entity_id) where valid_to is null;
      create index entity_version_as_of_idx on entity_version (tenant_id, entity_id, valid_from);
      create index entity_version_tags_idx on entity_version using gin (tags) where valid_to is null;
      create index entity_version_title_prefix_idx on entity_version (tenant_id, lower(title) text_pattern_ops)
        where valid_to is null;
      create index entity_version_title_trgm_idx on entity_version using gin (title gin_trgm_ops) where valid_to is null;
      create index entity_version_search_idx on entity_version using gin (search) where valid_to is null;
      create index entity_version_author_idx on entity_version (tenant_id, author_id);

      create table entity_label (
        tenant_id uuid not null,
        entity_id uuid not null,
        label text not null,
        version integer not null,
        protected boolean not null default false,
        moved_by uuid,
        valid_from timestamptz not null default now(),
        valid_to timestamptz,
        constraint entity_label_pkey primary key (tenant_id, entity_id, label, valid_from),
        constraint entity_label_version_fkey foreign key (tenant_id, entity_id, version)
          references entity_version (tenant_id, entity_id, version) on delete cascade,
        constraint entity_label_moved_by_fkey foreign key (tenant_id, moved_by) references app_user (tenant_id, id),
        constraint entity_label_label_check check (label ~ '^[a-z0-9_.-]{1,36}$' and label <> 'latest'),
        constraint entity_label_validity_check check (valid_to is null or valid_to > valid_from),
        constraint entity_label_no_overlap exclude using gist (
          tenant_id with =, entity_id with =, label with =, tstzrange(valid_from, valid_to) with &&)
      );
      comment on table entity_label is
        'Temporal label -> version pointers. Move: close the current row (valid_to = t) and insert the new one (valid_from = t). Remove: close only. History: every row, ordered by valid_from.';
      create unique index entity_label_current_key on entity_label (tenant_id, entity_id, label) where valid_to is null;
      create index entity_label_version_idx on entity_label (tenant_id, entity_id, version);

      create table favorite (
        tenant_id uuid not null,
        user_id uuid not null,
        entity_id uuid not null,
        created_at timestamptz not null default now(),
        constraint favorite_pkey primary key (tenant_id, user_id, entity_id),
        constraint favorite_user_fkey foreign key (tenant_id, user_id) references app_user (tenant_id, id) on delete cascade,
        constraint favorite_entity_fkey foreign key (tenant_id, entity_id) references entity (tenant_id, id) on delete cascade
      );
      create index favorite_entity_idx on favorite (tenant_id, entity_id);

      create table share (
        tenant_id uuid not null,
        id uuid not null default gen_random_uuid(),
        entity_id uuid not null,
        grantee_type text not null,
        grantee_user_id uuid,
        permission text not null,
        created_by uuid,
        created_at timestamptz not null default now(),
        updated_at timestamptz not null default now(),
        expires_at timestamptz,
        revoked_at timestamptz,
        revoked_by uuid,
        constraint share_pkey primary key (tenant_id, id),
        constraint share_entity_fkey foreign key (tenant_id, entity_id) references entity (tenant_id, id) on delete cascade,
        constraint share_grantee_user_fkey foreign key (tenant_id, grantee_user_id) references app_user (tenant_id, id)
          on delete cascade,
        constraint share_created_by_fkey foreign key (tenant_id, created_by) references app_user (tenant_id, id),
        constraint share_revoked_by_fkey foreign key (tenant_id, revoked_by) references app_user (tenant_id, id),
        constraint share_grantee_type_check check (grantee_type in ('user', 'tenant')),
        constraint share_grantee_check check ((grantee_type = 'user') = (grantee_user_id is not null)),
        constraint share_permission_check check (permission in ('view', 'edit', 'admin')),
        constraint share_expiry_check check (expires_at is null or expires_at > created_at),
        constraint share_revoked_check check (revoked_by is null or revoked_at is not null)
      );
      comment on table share is
        'A live share: revoked_at is null and (expires_at is null or expires_at > now()) - expiry needs no job. One unrevoked share per (entity, grantee): grant = insert ... on conflict on share_grantee_key do update.';
      create unique index share_grantee_key on share (tenant_id, entity_id, grantee_type, grantee_user_id)
        nulls not distinct where revoked_at is null;
      create index share_grantee_user_idx on share (tenant_id, grantee_user_id) where revoked_at is null;

      alter table entity enable row level security;
      alter table entity force row level security;
      create policy entity_tenant_isolation on entity
        using (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid)
        with check (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid);

      alter table entity_version enable row level security;
      alter table entity_version force row level security;
      create policy entity_version_tenant_isolation on entity_version
        using (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid)
        with check (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid);

      alter table entity_label enable row level security;
      alter table entity_label force row level security;
      create policy entity_label_tenant_isolation on entity_label
        using (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid)
        with check (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid);

      alter table favorite enable row level security;
      alter table favorite force row level security;
      create policy favorite_tenant_isolation on favorite
        using (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid)
        with check (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid);

      alter table share enable row level security;
      alter table share force row level security;
      create policy share_tenant_isolation on share
        using (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid)
        with check (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid);

      grant select, insert, update, delete on entity, favorite, share to promptcraft_content;
      grant select, insert on entity_version, entity_label to promptcraft_content;
      grant update (valid_to) on entity_version, entity_label to promptcraft_content;
      -- Graph resolves pinned/floating targets and shows titles; search embeds current versions.
      grant select on entity, entity_version, entity_label to promptcraft_graph;
      grant select on entity, entity_version to promptcraft_search;
    `);
  },
  async down(knex) {
    await knex.raw(`
      drop table if exists share;
      drop table if exists favorite;
      drop table if exists entity_label;
      drop table if exists entity_version;
      drop table if exists entity;
      drop function if exists entity_tags_valid(text[]);
    `);
  },
};
