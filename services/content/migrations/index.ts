import type { Migration } from "@promptcraft/db";

/** The content service's slice of the schema, tracked in `content_migrations`. */
export const migrations: readonly Migration[] = [];
