import type { Migration } from "@promptcraft/db";

/**
 * Invitations (issue 3): a user created without a password gets a one-time token, valid 7 days,
 * which AuthService.AcceptInvitation exchanges for a password and a session.
 *
 * - `invitation` is tenant data (RLS forced). The token is stored as its SHA-256 (256 random bits:
 *   a fast hash is enough, like API keys and refresh tokens); a user has at most one open
 *   invitation (`invitation_user_open_key`): issuing a new one closes the old.
 * - The token arrives without its tenant, so `auth_find_invitation(token_hash)` (SECURITY DEFINER,
 *   owned by promptcraft_system, EXECUTE for promptcraft_identity only) answers which tenant, user
 *   and invitation it names — only while the invitation is open and unexpired.
 * - Sessions started by accepting an invitation have `auth_method = 'invitation'`
 *   (AUTH_METHOD_INVITATION).
 */
export const createInvitations: Migration = {
  name: "20261125122000_create_invitations",
  async up(knex) {
    await knex.raw(`
      create table invitation (
        tenant_id uuid not null,
        id uuid not null default gen_random_uuid(),
        user_id uuid not null,
        token_hash text not null,
        created_by uuid,
        created_at timestamptz not null default now(),
        expires_at timestamptz not null,
        accepted_at timestamptz,
        revoked_at timestamptz,
        constraint invitation_pkey primary key (tenant_id, id),
        constraint invitation_user_fkey foreign key (tenant_id, user_id) references app_user (tenant_id, id) on delete cascade,
        constraint invitation_token_hash_key unique (tenant_id, token_hash),
        constraint invitation_token_hash_check check (char_length(token_hash) between 32 and 200),
        constraint invitation_expiry_check check (expires_at > created_at),
        constraint invitation_closed_check check (accepted_at is null or revoked_at is null)
      );
      comment on table invitation is
        'One-time invitation tokens (SHA-256) of invited users. Open = accepted_at and revoked_at null and expires_at in the future; at most one open per user.';
      create index invitation_token_hash_idx on invitation (token_hash);
      create unique index invitation_user_open_key on invitation (tenant_id, user_id) where accepted_at is null and revoked_at is null;
      create index invitation_expires_at_idx on invitation (expires_at);

      alter table invitation enable row level security;
      alter table invitation force row level security;
      create policy invitation_tenant_isolation on invitation
        using (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid)
        with check (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid);
      create policy invitation_system_read on invitation for select to promptcraft_system using (true);

      grant select, insert, update, delete on invitation to promptcraft_identity;
      grant select (tenant_id, id, user_id, token_hash, expires_at, accepted_at, revoked_at) on invitation to promptcraft_system;

      create function auth_find_invitation(p_token_hash text)
      returns table (tenant_id uuid, id uuid, user_id uuid)
      language sql stable security definer
      set search_path = pg_catalog, public
      as $fn$
        select i.tenant_id, i.id, i.user_id
        from public.invitation i
        where i.token_hash = p_token_hash and i.accepted_at is null and i.revoked_at is null and i.expires_at > now()
      $fn$;
      alter function auth_find_invitation(text) owner to promptcraft_system;
      revoke execute on function auth_find_invitation(text) from public;
      grant execute on function auth_find_invitation(text) to promptcraft_identity;

      alter table session drop constraint session_auth_method_check;
      alter table session add constraint session_auth_method_check check (auth_method in ('password', 'oidc', 'invitation'));
    `);
  },
  async down(knex) {
    await knex.raw(`
      -- An invitation session was started by setting a password: it reads as a password login.
      update session set auth_method = 'password' where auth_method = 'invitation';
      alter table session drop constraint session_auth_method_check;
      alter table session add constraint session_auth_method_check check (auth_method in ('password', 'oidc'));
      drop function if exists auth_find_invitation(text);
      drop table if exists invitation;
    `);
  },
};
