import type { Migration } from "@promptcraft/db";

/** The graph service's slice of the schema, tracked in `graph_migrations`. */
export const migrations: readonly Migration[] = [];
