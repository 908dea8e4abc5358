import type { Migration } from "@promptcraft/db";

/** The analytics service's slice of the schema, tracked in `analytics_migrations`. */
export const migrations: readonly Migration[] = [];
