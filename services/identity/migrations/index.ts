import type { Migration } from "@promptcraft/db";

/** The identity service's slice of the schema, tracked in `identity_migrations`. */
export const migrations: readonly Migration[] = [];
