import type { Migration } from "@promptcraft/db";
import { createGraphTables } from "./20261125093000_create_graph_tables.js";
import { createGraphFunctions } from "./20261125093100_create_graph_functions.js";
import { relationshipHistory } from "./20261207040100_relationship_history.js";
import { suggestionDecisions } from "./20261207040200_suggestion_decisions.js";

/** The graph service's slice of the schema, tracked in `graph_migrations`. See docs/schema.md. */
export const migrations: readonly Migration[] = [createGraphTables, createGraphFunctions, relationshipHistory, suggestionDecisions];
