import type { Migration } from "@promptcraft/db";

/**
 * Identity's tables: tenant, app_user, session, api_key, oauth_identity (tenant-owned, RLS forced),
 * and two platform tables that are not tenant data: signing_key (JWT keys, JWKS) and login_throttle
 * (failure counters per account and per client address; an address spans tenants).
 *
 * Conventions used by every slice: every tenant row has tenant_id; every primary key, unique
 * constraint and foreign key between tenant tables starts with tenant_id (Citus); `row_version` is the
 * etag of a mutable row (AIP-154: `update ... set row_version = row_version + 1 ... where row_version
 * = $etag`, 0 rows = ABORTED); policies read the tenant once per statement through an init-plan.
 */
export const createIdentityTables: Migration = {
  name: "20261125091000_create_identity_tables",
  async up(knex) {
    await knex.raw(`
      create table tenant (
        id uuid not null default gen_random_uuid(),
        slug text not null,
        name text not null,
        plan text not null default 'free',
        status text not null default 'active',
        quotas jsonb not null default '{}'::jsonb,
        settings jsonb not null default '{}'::jsonb,
        created_at timestamptz not null default now(),
        updated_at timestamptz not null default now(),
        suspended_at timestamptz,
        row_version bigint not null default 1,
        constraint tenant_pkey primary key (id),
        constraint tenant_slug_key unique (slug),
        constraint tenant_slug_check check (slug ~ '^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$'),
        constraint tenant_name_check check (char_length(btrim(name)) between 1 and 200),
        constraint tenant_plan_check check (plan ~ '^[a-z][a-z0-9_-]{0,31}$'),
        constraint tenant_status_check check (status in ('active', 'suspended')),
        constraint tenant_suspended_at_check check ((status = 'suspended') = (suspended_at is not null)),
        constraint tenant_quotas_check check (jsonb_typeof(quotas) = 'object'),
        constraint tenant_settings_check check (jsonb_typeof(settings) = 'object'),
        constraint tenant_row_version_check check (row_version >= 1)
      );
      comment on table tenant is 'One row per tenant; its id is the tenant_id of every tenant row. Citus: reference table.';

      create table app_user (
        tenant_id uuid not null,
        id uuid not null default gen_random_uuid(),
        email text not null,
        display_name text not null default '',
        role text not null,
        status text not null default 'active',
        password_hash text,
        password_changed_at timestamptz,
        email_verified_at timestamptz,
        last_login_at timestamptz,
        created_at timestamptz not null default now(),
        updated_at timestamptz not null default now(),
        deleted_at timestamptz,
        row_version bigint not null default 1,
        constraint app_user_pkey primary key (tenant_id, id),
        constraint app_user_tenant_fkey foreign key (tenant_id) references tenant (id) on delete cascade,
        constraint app_user_email_check check (char_length(email) <= 320 and email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
        constraint app_user_display_name_check check (char_length(display_name) <= 200),
        constraint app_user_role_check check (role in ('owner', 'admin', 'editor', 'viewer')),
        constraint app_user_status_check check (status in ('invited', 'active', 'deactivated')),
        constraint app_user_password_hash_check check (password_hash is null or char_length(password_hash) between 20 and 1000),
        constraint app_user_row_version_check check (row_version >= 1)
      );
      -- Case-insensitive, among users that are not deleted (a deleted user's address can be invited
      -- again; restoring the old one then fails with a unique violation -> ALREADY_EXISTS).
      create unique index app_user_email_key on app_user (tenant_id, lower(email)) where deleted_at is null;
      create index app_user_role_idx on app_user (tenant_id, role, status) where deleted_at is null;

      create table session (
        tenant_id uuid not null,
        id uuid not null default gen_random_uuid(),
        family_id uuid not null,
        generation integer not null default 0,
        user_id uuid not null,
        refresh_token_hash text not null,
        auth_method text not null default 'password',
        created_at timestamptz not null default now(),
        last_used_at timestamptz,
        expires_at timestamptz not null,
        absolute_expires_at timestamptz not null,
        rotated_at timestamptz,
        revoked_at timestamptz,
        revoked_reason text,
        user_agent text,
        client_ip inet,
        constraint session_pkey primary key (tenant_id, id),
        constraint session_user_fkey foreign key (tenant_id, user_id) references app_user (tenant_id, id) on delete cascade,
        constraint session_refresh_token_hash_key unique (tenant_id, refresh_token_hash),
        constraint session_family_generation_key unique (tenant_id, family_id, generation),
        constraint session_generation_check check (generation >= 0 and ((generation = 0) = (id = family_id))),
        constraint session_expiry_check check (expires_at <= absolute_expires_at),
        constraint session_auth_method_check check (auth_method in ('password', 'oidc')),
        constraint session_revoked_check check ((revoked_at is null) = (revoked_reason is null)),
        constraint session_revoked_reason_check check (revoked_reason is null or revoked_reason ~ '^[a-z_]{1,40}$'),
        constraint session_user_agent_check check (user_agent is null or char_length(user_agent) <= 1000)
      );
      comment on table session is
        'One row per issued refresh token. family_id (= id of generation 0) is the session (JWT sid). Rotation: set rotated_at on the presented row and insert generation + 1 with the same family_id and absolute_expires_at. Presenting a row whose rotated_at is set = reuse: revoke the family.';
      -- At most one live (not rotated) token per family: two concurrent refreshes with the same token
      -- cannot both rotate it.
      create unique index session_family_live_key on session (tenant_id, family_id) where rotated_at is null;
      create index session_user_idx on session (tenant_id, user_id) where rotated_at is null and revoked_at is null;
      create index session_refresh_token_hash_idx on session (refresh_token_hash);
      create index session_absolute_expiry_idx on session (absolute_expires_at);

      create table api_key (
        tenant_id uuid not null,
        id uuid not null default gen_random_uuid(),
        name text not null,
        prefix text not null,
        secret_hash text not null,
        role text not null,
        created_by uuid,
        created_at timestamptz not null default now(),
        expires_at timestamptz,
        last_used_at timestamptz,
        revoked_at timestamptz,
        constraint api_key_pkey primary key (tenant_id, id),
        constraint api_key_tenant_fkey foreign key (tenant_id) references tenant (id) on delete cascade,
        constraint api_key_created_by_fkey foreign key (tenant_id, created_by) references app_user (tenant_id, id)
          on delete set null (created_by),
        constraint api_key_prefix_key unique (tenant_id, prefix),
        constraint api_key_secret_hash_key unique (tenant_id, secret_hash),
        constraint api_key_name_check check (char_length(btrim(name)) between 1 and 200),
        constraint api_key_prefix_check check (prefix ~ '^[A-Za-z0-9_-]{4,64}$'),
        constraint api_key_secret_hash_check check (char_length(secret_hash) between 32 and 200),
        constraint api_key_role_check check (role in ('admin', 'editor', 'viewer')),
        constraint api_key_expiry_check check (expires_at is null or expires_at > created_at)
      );
      create index api_key_secret_hash_idx on api_key (secret_hash);

      create table oauth_identity (
        tenant_id uuid not null,
        id uuid not null default gen_random_uuid(),
        user_id uuid not null,
        issuer text not null,
        subject text not null,
        email text,
        email_verified boolean not null default false,
        created_at timestamptz not null default now(),
        last_login_at timestamptz,
        constraint oauth_identity_pkey primary key (tenant_id, id),
        constraint oauth_identity_user_fkey foreign key (tenant_id, user_id) references app_user (tenant_id, id) on delete cascade,
        constraint oauth_identity_issuer_subject_key unique (tenant_id, issuer, subject),
        constraint oauth_identity_issuer_check check (issuer ~ '^https{0,1}://' and char_length(issuer) <= 500),
        constraint oauth_identity_subject_check check (char_length(subject) between 1 and 255)
      );
      create index oauth_identity_user_idx on oauth_identity (tenant_id, user_id);

      create table signing_key (
        kid text not null,
        algorithm text not null,
        public_jwk jsonb not null,
        private_key text not null,
        created_at timestamptz not null default now(),
        activated_at timestamptz,
        retired_at timestamptz,
        expires_at timestamptz,
        constraint signing_key_pkey primary key (kid),
        constraint signing_key_kid_check check (kid ~ '^[A-Za-z0-9_-]{1,100}$'),
        constraint signing_key_algorithm_check check (algorithm in ('EdDSA', 'ES256')),
        constraint signing_key_public_jwk_check check (jsonb_typeof(public_jwk) = 'object'),
        constraint signing_key_lifecycle_check check (
          (retired_at is null or (activated_at is not null and retired_at >= activated_at))
          and (expires_at is null or retired_at is not null and expires_at >= retired_at))
      );
      comment on table signing_key is
        'JWT signing keys (platform-wide, not tenant data). Lifecycle: created (published in JWKS, not signing) -> activated (signs) -> retired (verifies only) -> expires_at (dropped from JWKS). private_key: PKCS#8 PEM, encrypted by the service when a key-encryption key is configured.';
      -- Exactly one key signs at a time: rotation retires the old and activates the new in one transaction.
      create unique index signing_key_one_active_key on signing_key ((retired_at is null))
        where activated_at is not null and retired_at is null;

      create table login_throttle (
        scope text not null,
        key text not null,
        failure_count integer not null default 0,
        first_failure_at timestamptz not null default now(),
        last_failure_at timestamptz not null default now(),
        blocked_until timestamptz,
        constraint login_throttle_pkey primary key (scope, key),
        constraint login_throttle_scope_check check (scope in ('account', 'address')),
        constraint login_throttle_key_check check (char_length(key) between 1 and 400),
        constraint login_throttle_failure_count_check check (failure_count >= 0)
      );
      comment on table login_throttle is
        'Failed-login counters. scope account: key = tenant_id || '':'' || lower(email); scope address: key = client IP (IPv6: /64). Not tenant data: an address is throttled across tenants. Upsert on failure, delete on success, prune by last_failure_at.';
      create index login_throttle_last_failure_idx on login_throttle (last_failure_at);

      -- Row-level security: tenant isolation on every tenant table.
      alter table tenant enable row level security;
      alter table tenant force row level security;
      create policy tenant_tenant_isolation on tenant
        using (id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid)
        with check (id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid);

      alter table app_user enable row level security;
      alter table app_user force row level security;
      create policy app_user_tenant_isolation on app_user
        using (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid)
        with check (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid);

      alter table session enable row level security;
      alter table session force row level security;
      create policy session_tenant_isolation on session
        using (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid)
        with check (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid);

      alter table api_key enable row level security;
      alter table api_key force row level security;
      create policy api_key_tenant_isolation on api_key
        using (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid)
        with check (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid);

      alter table oauth_identity enable row level security;
      alter table oauth_identity force row level security;
      create policy oauth_identity_tenant_isolation on oauth_identity
        using (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid)
        with check (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid);

      -- Cross-tenant reads for the login lookups only (functions owned by promptcraft_system).
      create policy tenant_system_read on tenant for select to promptcraft_system using (true);
      create policy app_user_system_read on app_user for select to promptcraft_system using (true);
      create policy session_system_read on session for select to promptcraft_system using (true);
      create policy api_key_system_read on api_key for select to promptcraft_system using (true);

      -- Grants: identity writes its own tables.
      grant select, insert, update, delete on tenant, app_user, session, api_key, oauth_identity,
        signing_key, login_throttle to promptcraft_identity;
      -- Every service's auth interceptor must refuse a suspended tenant or a deleted user, and content
      -- and analytics read plans/quotas: the columns that carry no secret.
      grant select (id, slug, name, plan, status, quotas, created_at, updated_at, suspended_at, row_version)
        on tenant to promptcraft_content, promptcraft_graph, promptcraft_search, promptcraft_analytics;
      grant select (tenant_id, id, display_name, role, status, created_at, updated_at, deleted_at)
        on app_user to promptcraft_content, promptcraft_graph, promptcraft_search, promptcraft_analytics;
      grant select (id, slug, name, status) on tenant to promptcraft_system;
      grant select (tenant_id, id, email, display_name, role, status, password_hash, deleted_at) on app_user
        to promptcraft_system;
      grant select (tenant_id, id, family_id, user_id, refresh_token_hash) on session to promptcraft_system;
      grant select (tenant_id, id, role, secret_hash, expires_at, revoked_at, created_by) on api_key
        to promptcraft_system;
    `);
  },
  async down(knex) {
    await knex.raw(`
      drop table if exists login_throttle;
      drop table if exists signing_key;
      drop table if exists oauth_identity;
      drop table if exists api_key;
      drop table if exists session;
      drop table if exists app_user;
      drop table if exists tenant;
    `);
  },
};
