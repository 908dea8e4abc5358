import type { Migration } from "@promptcraft/db";

/** The search service's slice of the schema, tracked in `search_migrations`. */
export const migrations: readonly Migration[] = [];
