import type { ServiceDeps, ServiceHandlers } from "@promptcraft/platform";
import type { SearchService } from "@promptcraft/proto/promptcraft/search/v1/search_service_pb";
import type { SearchConfig } from "../config.js";

/**
 * Handlers of `promptcraft.search.v1.SearchService`. None is built yet: every method answers
 * UNIMPLEMENTED (the platform does that for a method without a handler), never made-up data.
 */
export function searchHandlers(_deps: ServiceDeps<SearchConfig>): ServiceHandlers<typeof SearchService> {
  return {};
}
