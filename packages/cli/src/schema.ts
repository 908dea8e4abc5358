import { coreMigrations, type SchemaSlice } from "@promptcraft/db";
import { migrations as identity } from "@promptcraft/identity/migrations";
import { migrations as content } from "@promptcraft/content/migrations";
import { migrations as graph } from "@promptcraft/graph/migrations";
import { migrations as search } from "@promptcraft/search/migrations";
import { migrations as analytics } from "@promptcraft/analytics/migrations";

/**
 * Every slice of the schema in dependency order: the core (extensions, roles, event log) first,
 * then each service after the services whose tables it references.
 */
export const SCHEMA_SLICES: readonly SchemaSlice[] = [
  { name: "core", migrations: coreMigrations },
  { name: "identity", migrations: identity },
  { name: "content", migrations: content },
  { name: "graph", migrations: graph },
  { name: "search", migrations: search },
  { name: "analytics", migrations: analytics },
];
