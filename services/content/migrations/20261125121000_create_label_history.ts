import type { Migration } from "@promptcraft/db";

/**
 * What label history and protected labels need beyond the base tables.
 *
 * - **entity_label_event**: one append-only row per label change (set, moved, removed) with who,
 *   why (`reason`) and the call's request id. `entity_label` keeps the temporal pointers ("what did
 *   production point to at T"); it has no room for a reason, nor an actor for a removal (closing a
 *   row writes only `valid_to`), and the audit log (`event`) is readable by analytics only. Both are
 *   written in the same transaction. `idempotency_key` is the AIP-155 `request_id` of SetLabel: a
 *   retry finds the event of the first call. Insert and select only: history is immutable.
 * - **tenant_protected_labels()**: the caller's tenant's `settings.protected_labels` (absent key =
 *   the default `["production"]`, as identity shows it). `settings` is not readable by other services
 *   (it may hold the tenant's own free-form settings), so this SECURITY DEFINER function, owned by
 *   promptcraft_system, returns only that list, and only for the transaction's tenant.
 */
export const createLabelHistory: Migration = {
  name: "20261125121000_create_label_history",
  async up(knex) {
    await knex.raw(`
      create table entity_label_event (
        tenant_id uuid not null,
        entity_id uuid not null,
        id bigint generated always as identity,
        label text not null,
        event_type text not null,
        from_version integer,
        to_version integer,
        protected boolean not null default false,
        actor_type text not null,
        actor_id uuid,
        reason text not null default '',
        request_id text,
        idempotency_key text,
        occurred_at timestamptz not null,
        constraint entity_label_event_pkey primary key (tenant_id, entity_id, id),
        constraint entity_label_event_entity_fkey foreign key (tenant_id, entity_id)
          references entity (tenant_id, id) on delete cascade,
        constraint entity_label_event_type_check check (
          (event_type = 'set' and from_version is null and to_version is not null)
          or (event_type = 'moved' and from_version is not null and to_version is not null)
          or (event_type = 'removed' and from_version is not null and to_version is null)),
        constraint entity_label_event_actor_type_check check (actor_type in ('user', 'api_key', 'service', 'system')),
        constraint entity_label_event_reason_check check (char_length(reason) <= 1000),
        constraint entity_label_event_idempotency_key_check check (
          idempotency_key is null or char_length(idempotency_key) between 1 and 200)
      );
      comment on table entity_label_event is
        'Label history (ListLabelHistory): one row per set/move/remove, with actor, reason and request id; written with the entity_label change.';
      create index entity_label_event_label_idx on entity_label_event (tenant_id, entity_id, label, id);
      create unique index entity_label_event_idempotency_key on entity_label_event (tenant_id, entity_id, idempotency_key)
        where idempotency_key is not null;

      alter table entity_label_event enable row level security;
      alter table entity_label_event force row level security;
      create policy entity_label_event_tenant_isolation on entity_label_event
        using (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid)
        with check (tenant_id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid);
      grant select, insert on entity_label_event to promptcraft_content;

      grant select (settings) on tenant to promptcraft_system;
      create function tenant_protected_labels()
      returns text[]
      language sql stable security definer
      set search_path = pg_catalog, public
      as $fn$
        select case when t.settings -> 'protected_labels' is not null
                    then array(select jsonb_array_elements_text(t.settings -> 'protected_labels'))
                    else array['production'] end
        from public.tenant t
        where t.id = (select nullif(current_setting('app.tenant_id', true), ''))::uuid
      $fn$;
      comment on function tenant_protected_labels() is
        'The protected labels of the transaction''s tenant (settings.protected_labels; default production).';
      alter function tenant_protected_labels() owner to promptcraft_system;
      revoke execute on function tenant_protected_labels() from public;
      grant execute on function tenant_protected_labels() to promptcraft_content;
    `);
  },
  async down(knex) {
    await knex.raw(`
      drop function if exists tenant_protected_labels();
      revoke select (settings) on tenant from promptcraft_system;
      drop table if exists entity_label_event;
    `);
  },
};
