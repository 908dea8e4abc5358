import type { Migration } from "../migrate.js";

/**
 * The five service roles (brief §4.2) and `promptcraft_system`.
 *
 * Roles are cluster-wide while migrations are per database, so:
 * - `up` creates a role only if it is missing and tolerates a concurrent creation by another
 *   database's migration (duplicate_object / unique_violation);
 * - `down` revokes what this database granted and then tries to drop the role, keeping it (with a
 *   NOTICE) when another database still holds privileges for it.
 *
 * All roles are NOLOGIN: services log in as a login role that is a member of their service role and
 * switch with `SET LOCAL ROLE` per transaction (`withTenant`). `promptcraft_system` is never assumed
 * by a service: it only owns the SECURITY DEFINER functions and materialized views that must read
 * across tenants (login lookups, read-model refresh, job claiming) and gets row-level-security
 * policies for exactly those reads. It needs CREATE on the schema because a non-superuser migrator can
 * only hand ownership (`ALTER ... OWNER TO`) to a role that has it; nobody can log in as it.
 *
 * A migrator that is not a superuser makes itself a member of every role: it needs that to hand
 * objects to promptcraft_system, and fixtures/tests use it to act as the services.
 */
export const createRoles: Migration = {
  name: "20261125090100_create_roles",
  async up(knex) {
    await knex.raw(`
      do $$
      declare
        r text;
      begin
        foreach r in array array['promptcraft_identity', 'promptcraft_content', 'promptcraft_graph',
                                 'promptcraft_search', 'promptcraft_analytics', 'promptcraft_system'] loop
          if not exists (select from pg_catalog.pg_roles where rolname = r) then
            begin
              execute format('create role %I nologin', r);
            exception when duplicate_object or unique_violation then
              null; -- created at the same moment by another database's migration
            end;
          end if;
          if not (select rolsuper from pg_catalog.pg_roles where rolname = current_user)
             and not pg_catalog.pg_has_role(current_user, r, 'MEMBER') then
            begin
              execute format('grant %I to %I', r, current_user);
            exception when insufficient_privilege or invalid_grant_operation then
              raise notice 'could not make % a member of %; an administrator must grant it', current_user, r;
            end;
          end if;
          execute format('grant usage on schema public to %I', r);
        end loop;
      end
      $$;
      grant create on schema public to promptcraft_system;
    `);
  },
  async down(knex) {
    await knex.raw(`
      do $$
      declare
        r text;
      begin
        foreach r in array array['promptcraft_system', 'promptcraft_analytics', 'promptcraft_search',
                                 'promptcraft_graph', 'promptcraft_content', 'promptcraft_identity'] loop
          if exists (select from pg_catalog.pg_roles where rolname = r) then
            execute format('revoke all on schema public from %I', r);
            begin
              execute format('drop role %I', r);
            exception
              when dependent_objects_still_exist then
                raise notice 'role % kept: another database still uses it', r;
              when insufficient_privilege then
                raise notice 'role % kept: not allowed to drop it', r;
            end;
          end if;
        end loop;
      end
      $$;
    `);
  },
};
