import type { Migration } from "../migrate.js";
import { createExtensions } from "./20261125090000_create_extensions.js";
import { createRoles } from "./20261125090100_create_roles.js";
import { createEventLog } from "./20261125090200_create_event_log.js";
import { createEventConsumer } from "./20261206220000_create_event_consumer.js";
import { renameEventTypes } from "./20261206220100_rename_event_types.js";
import { perDatabaseEventHorizon } from "./20261207060000_per_database_event_horizon.js";

/**
 * The `core` slice of the schema, applied before every service's slice: extensions, the service
 * roles (plus `promptcraft_system`, owner of the cross-tenant functions), the shared event log and
 * the partition maintenance functions. See docs/schema.md.
 *
 * Each migration is a self-contained snapshot of SQL (no shared helpers), so that changing a helper
 * can never silently change an applied migration.
 */
export const coreMigrations: readonly Migration[] = [createExtensions, createRoles, createEventLog, createEventConsumer, renameEventTypes, perDatabaseEventHorizon];
