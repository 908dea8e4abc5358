import type { Migration } from "@promptcraft/db";
import { createSearchTables } from "./20261125094000_create_search_tables.js";
import { createSearchFunctions } from "./20261125094100_create_search_functions.js";
import { createEmbeddingReindex } from "./20261207050100_create_embedding_reindex.js";
import { createMissingEmbeddingsScan } from "./20261207090100_create_missing_embeddings_scan.js";
import { halfvecHnswIndexes } from "./20261207100100_halfvec_hnsw_indexes.js";
import { createTextMatchesFunction } from "./20261207100200_create_text_matches_function.js";

/** The search service's slice of the schema, tracked in `search_migrations`. See docs/schema.md. */
export const migrations: readonly Migration[] = [createSearchTables, createSearchFunctions, createEmbeddingReindex, createMissingEmbeddingsScan, halfvecHnswIndexes, createTextMatchesFunction];
