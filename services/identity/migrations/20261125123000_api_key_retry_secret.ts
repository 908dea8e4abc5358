import type { Migration } from "@promptcraft/db";

/**
 * CreateApiKey with `request_id` (AIP-155; the contract: "a retry returns the same secret only
 * within 10 minutes"). The key's id is derived from the request id, so a retry finds the row; to
 * answer it with the same secret, `retry_secret` keeps the secret encrypted under identity's
 * key-encryption key (AES-256-GCM, the key's tenant and id as associated data) — only for keys
 * created with a request id, and only for 10 minutes: reads ignore it after that and housekeeping
 * clears it.
 */
export const addApiKeyRetrySecret: Migration = {
  name: "20261125123000_api_key_retry_secret",
  async up(knex) {
    await knex.raw(`
      alter table api_key add column retry_secret text;
      alter table api_key add constraint api_key_retry_secret_check check (retry_secret is null or char_length(retry_secret) between 20 and 1000);
      create index api_key_retry_secret_idx on api_key (created_at) where retry_secret is not null;
      comment on column api_key.retry_secret is
        'The secret, encrypted (aes256gcm:v1) for 10 minutes after creation with a request_id, so an AIP-155 retry gets the same secret; cleared by housekeeping.';
    `);
  },
  async down(knex) {
    await knex.raw("alter table api_key drop column if exists retry_secret");
  },
};
