import type { Migration } from "@promptcraft/db";
import { createIdentityTables } from "./20261125091000_create_identity_tables.js";
import { createAuthFunctions } from "./20261125091100_create_auth_functions.js";
import { createOidcTables } from "./20261125120000_create_oidc_tables.js";

/** The identity service's slice of the schema, tracked in `identity_migrations`. See docs/schema.md. */
export const migrations: readonly Migration[] = [createIdentityTables, createAuthFunctions, createOidcTables];
