import { tenantIsolationSql, type Migration } from "@promptcraft/db";

/**
 * Entity names (issue 10): a slug that addresses an entity by name (`GetEntity{name, label}`), and
 * the history of which entity held which name when, so a read by name as of a past time resolves
 * the entity that held the name then.
 *
 * - `entity.name`: the entity's current name, `^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$` (1-64
 *   lowercase ASCII letters, digits and inner hyphens), collation "C" (byte order: ListEntities'
 *   `order_by name` and `name_prefix` use the unique index). Unique per tenant among live entities:
 *   a soft-deleted entity keeps its name (to get it back on undelete) but no longer holds it, so
 *   another entity may take it meanwhile.
 * - `entity_name`: one row per period in which an entity held a name, like `entity_label`'s
 *   periods: created / undeleted opens a row, deleted closes it, renamed closes one and opens the
 *   next. The GiST exclusion makes two entities holding the same name at the same instant
 *   impossible, so "the entity named N at T" is at most one row. `set_by` / `set_by_api_key_id`:
 *   who gave the entity the name (none for backfilled rows).
 * - Backfill: every existing entity gets a name derived from its current title by the same rule as
 *   domain/names.ts (NFKD, combining marks dropped, runs of other characters than ASCII letters and
 *   digits become `-`, lowercased, trimmed to 64; `entity` if nothing is left), made unique per
 *   tenant among all its entities (oldest first keeps the plain slug; later ones get `-2`, `-3`…),
 *   held from its creation until its deletion.
 */
/** The SQL of domain/names.ts `slugOf` applied to `title` (a schema test holds the two equal). */
export function titleSlugSql(title: string): string {
  return `coalesce(nullif(trim(trailing '-' from left(trim(both '-' from lower(regexp_replace(
    regexp_replace(normalize(${title}, NFKD), '[\\u0300-\\u036f]', '', 'g'), '[^A-Za-z0-9]+', '-', 'g'))), 64)), ''), 'entity')`;
}

export const addEntityNames: Migration = {
  name: "20261206220000_add_entity_names",
  async up(knex) {
    await knex.raw(`alter table entity add column name text collate "C"`);
    const { rows } = await knex.raw<{ rows: { tenant_id: string; id: string; base: string }[] }>(`
      select e.tenant_id, e.id, ${titleSlugSql("coalesce(v.title, '')")} as base
      from entity e
      -- The latest version's title; an entity without versions (never in the product's own
      -- writes, but possible in a database written by hand) is still named ('entity', 'entity-2'…).
      left join lateral (
        select lv.title from entity_version lv
        where lv.tenant_id = e.tenant_id and lv.entity_id = e.id
        order by lv.version desc limit 1
      ) v on true
      order by e.tenant_id, e.created_at, e.id`);
    const taken = new Map<string, Set<string>>();
    const ids: string[] = [];
    const tenants: string[] = [];
    const names: string[] = [];
    for (const row of rows) {
      const used = taken.get(row.tenant_id) ?? new Set<string>();
      taken.set(row.tenant_id, used);
      let name = row.base;
      for (let n = 2; used.has(name); n++) name = `${row.base.slice(0, 64 - `-${n}`.length).replace(/-+$/, "")}-${n}`;
      used.add(name);
      tenants.push(row.tenant_id);
      ids.push(row.id);
      names.push(name);
    }
    for (let i = 0; i < ids.length; i += 5000) {
      await knex.raw(
        `update entity e set name = n.name
         from unnest(?::uuid[], ?::uuid[], ?::text[]) as n(tenant_id, id, name)
         where e.tenant_id = n.tenant_id and e.id = n.id`,
        [tenants.slice(i, i + 5000), ids.slice(i, i + 5000), names.slice(i, i + 5000)],
      );
    }
    await knex.raw(`
      -- {0,1} rather than ?: knex.raw reads every ? as a binding.
      alter table entity alter column name set not null;
      alter table entity add constraint entity_name_check check (name ~ '^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9]){0,1}$');
      comment on column entity.name is
        'Slug addressing the entity (GetEntity by name); unique per tenant among live entities; kept while deleted. History in entity_name.';
      create unique index entity_name_key on entity (tenant_id, name) where deleted_at is null;

      create table entity_name (
        tenant_id uuid not null,
        entity_id uuid not null,
        name text collate "C" not null,
        set_by uuid,
        set_by_api_key_id uuid,
        valid_from timestamptz not null,
        valid_to timestamptz,
        constraint entity_name_pkey primary key (tenant_id, entity_id, valid_from),
        constraint entity_name_entity_fkey foreign key (tenant_id, entity_id) references entity (tenant_id, id) on delete cascade,
        constraint entity_name_set_by_fkey foreign key (tenant_id, set_by) references app_user (tenant_id, id),
        constraint entity_name_set_by_api_key_fkey foreign key (tenant_id, set_by_api_key_id) references api_key (tenant_id, id),
        constraint entity_name_set_by_check check (num_nonnulls(set_by, set_by_api_key_id) <= 1),
        constraint entity_name_name_check check (name ~ '^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9]){0,1}$'),
        constraint entity_name_validity_check check (valid_to is null or valid_to > valid_from),
        constraint entity_name_no_overlap exclude using gist (
          tenant_id with =, name with =, tstzrange(valid_from, valid_to) with &&)
      );
      comment on table entity_name is
        'Which entity held which name when: opened on create/undelete/rename, closed on delete/rename. At most one holder of a name at any instant.';
      create unique index entity_name_current_key on entity_name (tenant_id, entity_id) where valid_to is null;
      create index entity_name_set_by_idx on entity_name (tenant_id, set_by) where set_by is not null;
      create index entity_name_set_by_api_key_idx on entity_name (tenant_id, set_by_api_key_id) where set_by_api_key_id is not null;
      ${tenantIsolationSql("entity_name")}
      grant select, insert on entity_name to promptcraft_content;
      grant update (valid_to) on entity_name to promptcraft_content;
      grant select on entity_name to promptcraft_graph;

      insert into entity_name (tenant_id, entity_id, name, valid_from, valid_to)
      select tenant_id, id, name, created_at,
             case when deleted_at is not null then greatest(deleted_at, created_at + interval '1 microsecond') end
      from entity;
    `);
  },
  async down(knex) {
    await knex.raw(`
      drop table if exists entity_name;
      alter table entity drop column if exists name;
    `);
  },
};
