import type { Migration } from "@promptcraft/db";

/**
 * OpenID Connect login: the tenant's providers, the pending login attempts of the authorization code
 * flow, the provider of each linked identity (`oauth_identity.provider_id`) and of each OIDC
 * session (`session.oidc_provider_id`).
 *
 * - oidc_provider: one row per configured provider. `client_secret` is never stored in clear: it is
 *   `aes256gcm:v1:…` under IDENTITY_KEY_ENCRYPTION_KEY with the provider id as associated data.
 * - oidc_login_attempt: what StartOidcLogin remembers for CompleteOidcLogin (10 minutes, single use).
 *   The `state` is stored as its SHA-256 (it travels through the browser, like a refresh token);
 *   the PKCE `code_verifier` is encrypted like the client secret (associated data: the attempt id)
 *   and never leaves the service. CompleteOidcLogin consumes a row with `delete … returning`, so a
 *   replayed state finds nothing.
 * - auth_find_oidc_attempt(state_hash): the callback carries no tenant, so the attempt's tenant is
 *   looked up like a refresh token's (SECURITY DEFINER, owned by promptcraft_system, select only).
 */
export const createOidcTables: Migration = {
  name: "20261125120000_create_oidc_tables",
  async up(knex) {
    await knex.raw(`
      create table oidc_provider (
        tenant_id uuid not null,
        id uuid not null default gen_random_uuid(),
        display_name text not null,
        issuer text not null,
        client_id text not null,
        client_secret text,
        scopes text[] not null default '{email,profile}',
        allowed_email_domains text[] not null default '{}',
        jit_enabled boolean not null default false,
        jit_role text not null default 'viewer',
        enabled boolean not null default true,
        created_at timestamptz not null default now(),
        updated_at timestamptz not null default now(),
        row_version bigint not null default 1,
        constraint oidc_provider_pkey primary key (tenant_id, id),
        constraint oidc_provider_tenant_fkey foreign key (tenant_id) references tenant (id) on delete cascade,
        constraint oidc_provider_issuer_client_key unique (tenant_id, issuer, client_id),
        constraint oidc_provider_display_name_check check (char_length(btrim(display_name)) between 1 and 100),
        constraint oidc_provider_issuer_check check (issuer ~ '^https{0,1}://' and char_length(issuer) <= 500),
        constraint oidc_provider_client_id_check check (char_length(client_id) between 1 and 512),
        constraint oidc_provider_client_secret_check check (client_secret is null or client_secret like 'aes256gcm:v1:%'),
        constraint oidc_provider_scopes_check check (cardinality(scopes) <= 20),
        constraint oidc_provider_domains_check check (cardinality(allowed_email_domains) <= 100),
        constraint oidc_provider_jit_role_check check (jit_role in ('admin', 'editor', 'viewer')),
        constraint oidc_provider_row_version_check check (row_version >= 1)
      );
      comment on table oidc_provider is
        'OIDC providers of a tenant. client_secret: aes256gcm:v1 ciphertext (AAD = provider id), never returned. Deleting a provider deletes the identities linked through it.';

      create table oidc_login_attempt (
        tenant_id uuid not null,
        id uuid not null default gen_random_uuid(),
        provider_id uuid not null,
        state_hash text not null,
        nonce text not null,
        code_verifier text not null,
        redirect_uri text not null,
        created_at timestamptz not null default now(),
        expires_at timestamptz not null,
        constraint oidc_login_attempt_pkey primary key (tenant_id, id),
        constraint oidc_login_attempt_provider_fkey foreign key (tenant_id, provider_id)
          references oidc_provider (tenant_id, id) on delete cascade,
        constraint oidc_login_attempt_state_hash_key unique (tenant_id, state_hash),
        constraint oidc_login_attempt_state_hash_check check (state_hash ~ '^[0-9a-f]{64}$'),
        constraint oidc_login_attempt_nonce_check check (char_length(nonce) between 16 and 200),
        constraint oidc_login_attempt_code_verifier_check check (code_verifier like 'aes256gcm:v1:%'),
        constraint oidc_login_attempt_redirect_uri_check check (char_length(redirect_uri) <= 2048),
        constraint oidc_login_attempt_expiry_check check (expires_at > created_at)
      );
      comment on table oidc_login_attempt is
        'Pending OIDC authorization code flows (StartOidcLogin -> CompleteOidcLogin). Single use: consumed by delete ... returning. Expired rows are pruned by the next StartOidcLogin of the tenant.';
      create index oidc_login_attempt_state_hash_idx on oidc_login_attempt (state_hash);
      create index oidc_login_attempt_expiry_idx on oidc_login_attempt (tenant_id, expires_at);

      -- No code wrote oauth_identity before this migration, so the column can be required at once.
      alter table oauth_identity add column provider_id uuid not null;
      alter table oauth_identity add constraint oauth_identity_provider_fkey foreign key (tenant_id, provider_id)
        references oidc_provider (tenant_id, id) on delete cascade;
      create index oauth_identity_provider_idx on oauth_identity (tenant_id, provider_id);

      -- Session.oidc_provider_id of the contract; kept after the provider is deleted (history).
      alter table session add column oidc_provider_id uuid;
      alter table session add constraint session_oidc_provider_check check ((auth_method = 'oidc') = (oidc_provider_id is not null));

      alter table oidc_provider enable row level security;
      alter table oidc_provider force row level security;
      create policy oidc_provider_tenant_isolation on oidc_provider
        using (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid)
        with check (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid);

      alter table oidc_login_attempt enable row level security;
      alter table oidc_login_attempt force row level security;
      create policy oidc_login_attempt_tenant_isolation on oidc_login_attempt
        using (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid)
        with check (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid);
      create policy oidc_login_attempt_system_read on oidc_login_attempt for select to promptcraft_system using (true);

      grant select, insert, update, delete on oidc_provider, oidc_login_attempt to promptcraft_identity;
      grant select (tenant_id, id, state_hash) on oidc_login_attempt to promptcraft_system;

      create function auth_find_oidc_attempt(p_state_hash text)
      returns table (tenant_id uuid, id uuid)
      language sql stable security definer
      set search_path = pg_catalog, public
      as $fn$
        select a.tenant_id, a.id
        from public.oidc_login_attempt a
        where a.state_hash = p_state_hash
      $fn$;
      alter function auth_find_oidc_attempt(text) owner to promptcraft_system;
      revoke execute on function auth_find_oidc_attempt(text) from public;
      grant execute on function auth_find_oidc_attempt(text) to promptcraft_identity;
    `);
  },
  async down(knex) {
    await knex.raw(`
      drop function if exists auth_find_oidc_attempt(text);
      alter table session drop column if exists oidc_provider_id;
      alter table oauth_identity drop column if exists provider_id;
      drop table if exists oidc_login_attempt;
      drop table if exists oidc_provider;
    `);
  },
};
