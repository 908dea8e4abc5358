import type { Migration } from "@promptcraft/db";
import { createContentTables } from "./20261125092000_create_content_tables.js";
import { createHistoryFunctions } from "./20261125092100_create_history_functions.js";
import { addVersionRequestId } from "./20261125120000_add_version_request_id.js";
import { createLabelHistory } from "./20261125121000_create_label_history.js";
import { addApiKeyAuthorship } from "./20261206180100_add_api_key_authorship.js";
import { addEntityNames } from "./20261206220000_add_entity_names.js";
import { graphReadsAccess } from "./20261207040000_graph_reads_access.js";
import { searchReadsAccess } from "./20261207050000_search_reads_access.js";

/** The content service's slice of the schema, tracked in `content_migrations`. See docs/schema.md. */
export const migrations: readonly Migration[] = [
  createContentTables,
  createHistoryFunctions,
  addVersionRequestId,
  createLabelHistory,
  addApiKeyAuthorship,
  addEntityNames,
  graphReadsAccess,
  searchReadsAccess,
];
