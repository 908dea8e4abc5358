import type { ServiceDeps, ServiceHandlers } from "@promptcraft/platform";
import type { SearchService } from "@promptcraft/proto/promptcraft/search/v1/search_service_pb";
import type { SearchConfig } from "../config.js";
import type { SearchState } from "../routes.js";
import { embeddingHandlers } from "./embeddings.js";
import { searchHandlers as searchAreaHandlers } from "./search.js";

/** Handlers of `promptcraft.search.v1.SearchService`: search (search.ts) and the embedding pipeline (embeddings.ts). */
export function searchHandlers(deps: ServiceDeps<SearchConfig>, state: SearchState): ServiceHandlers<typeof SearchService> {
  const tuning = { efSearch: deps.config.SEARCH_EF_SEARCH, maxScanTuples: deps.config.SEARCH_MAX_SCAN_TUPLES };
  return { ...searchAreaHandlers({ db: deps.db, registry: state.registry, tuning }, state.usage), ...embeddingHandlers(deps.db, state.registry) };
}
