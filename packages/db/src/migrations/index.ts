import type { Migration } from "../migrate.js";

/**
 * The `core` slice of the schema, applied before every service's slice: extensions, the service
 * roles and the shared event log.
 */
export const coreMigrations: readonly Migration[] = [];
