import type { Migration } from "@promptcraft/db";
import { createIdentityTables } from "./20261125091000_create_identity_tables.js";
import { createAuthFunctions } from "./20261125091100_create_auth_functions.js";
import { createOidcTables } from "./20261125120000_create_oidc_tables.js";
import { createTenantListingAndSessionStatus } from "./20261125121000_tenant_listing_and_session_status.js";
import { createInvitations } from "./20261125122000_create_invitations.js";
import { addApiKeyRetrySecret } from "./20261125123000_api_key_retry_secret.js";
import { addTenantSuspendReason } from "./20261206180000_add_tenant_suspend_reason.js";
import { capApiKeysByCreator } from "./20261207180000_api_key_creator_cap.js";

/** The identity service's slice of the schema, tracked in `identity_migrations`. See docs/schema.md. */
export const migrations: readonly Migration[] = [
  createIdentityTables,
  createAuthFunctions,
  createOidcTables,
  createTenantListingAndSessionStatus,
  createInvitations,
  addApiKeyRetrySecret,
  addTenantSuspendReason,
  capApiKeysByCreator,
];
