import type { Migration } from "../migrate.js";

/**
 * Event types to the analytics contract's naming, `<service>.<aggregate>.<past-tense verb>`
 * (`identity.user.created`, `content.entity.updated`, `content.label.moved`), and aggregate names as
 * the contract lists them (`user`, not the table name `app_user`), for the rows already stored; the
 * emitters of identity and content write the new names from this release on. Share, favorite and
 * label changes keep `aggregate_type = 'entity'` (the entity is the aggregate whose version they
 * bump; its id is `aggregate_id`); their type names the part that changed (`content.share.granted`).
 *
 * `event` forces row-level security on its owner too; the rename lifts that for this transaction
 * only (superusers bypass it anyway). The mapping is spelled out here, frozen with the migration.
 */
const MAPPING = `(values
          ('tenant.created', 'identity.tenant.created'),
          ('tenant.updated', 'identity.tenant.updated'),
          ('tenant.suspended', 'identity.tenant.suspended'),
          ('tenant.resumed', 'identity.tenant.resumed'),
          ('user.created', 'identity.user.created'),
          ('user.updated', 'identity.user.updated'),
          ('user.role_changed', 'identity.user.role_changed'),
          ('user.deactivated', 'identity.user.deactivated'),
          ('user.reactivated', 'identity.user.reactivated'),
          ('user.deleted', 'identity.user.deleted'),
          ('user.undeleted', 'identity.user.undeleted'),
          ('user.invited', 'identity.user.invited'),
          ('user.invitation_accepted', 'identity.user.invitation_accepted'),
          ('user.activated', 'identity.user.activated'),
          ('user.password_changed', 'identity.user.password_changed'),
          ('user.password_change_failed', 'identity.user.password_change_failed'),
          ('user.password_reset', 'identity.user.password_reset'),
          ('login.succeeded', 'identity.login.succeeded'),
          ('login.failed', 'identity.login.failed'),
          ('session.refresh_token_reused', 'identity.session.refresh_token_reused'),
          ('session.logged_out', 'identity.session.logged_out'),
          ('session.revoked', 'identity.session.revoked'),
          ('api_key.created', 'identity.api_key.created'),
          ('api_key.revoked', 'identity.api_key.revoked'),
          ('oidc_provider.created', 'identity.oidc_provider.created'),
          ('oidc_provider.updated', 'identity.oidc_provider.updated'),
          ('oidc_provider.deleted', 'identity.oidc_provider.deleted'),
          ('linked_identity.created', 'identity.linked_identity.created'),
          ('linked_identity.deleted', 'identity.linked_identity.deleted'),
          ('entity.share_granted', 'content.share.granted'),
          ('entity.share_revoked', 'content.share.revoked'),
          ('entity.favorite_added', 'content.favorite.added'),
          ('entity.favorite_removed', 'content.favorite.removed'),
          ('entity.label_moved', 'content.label.moved'),
          ('entity.label_removed', 'content.label.removed'),
          ('entity.created', 'content.entity.created'),
          ('entity.updated', 'content.entity.updated'),
          ('entity.deleted', 'content.entity.deleted'),
          ('entity.undeleted', 'content.entity.undeleted'),
          ('entity.purged', 'content.entity.purged'),
          ('entity.rolled_back', 'content.entity.rolled_back')
        ) as m(old_type, new_type)`;

/** Renames `from` to `to` (column names of MAPPING) and the user aggregate, with RLS lifted for the owner. */
function rename(from: "old_type" | "new_type", to: "old_type" | "new_type", userFrom: string, userTo: string): string {
  return `
      alter table event no force row level security;
      update event e set event_type = m.${to} from ${MAPPING} where e.event_type = m.${from};
      update event set aggregate_type = '${userTo}' where aggregate_type = '${userFrom}';
      alter table event force row level security;`;
}

export const renameEventTypes: Migration = {
  name: "20261206220100_rename_event_types",
  async up(knex) {
    await knex.raw(rename("old_type", "new_type", "app_user", "user"));
  },
  async down(knex) {
    await knex.raw(rename("new_type", "old_type", "user", "app_user"));
  },
};
