import { serve, type ServiceDeps, type ServiceRegistration } from "@promptcraft/platform";
import { SearchService } from "@promptcraft/proto/promptcraft/search/v1/search_service_pb";
import type { SearchConfig } from "./config.js";
import { searchHandlers } from "./handlers/index.js";
import type { ModelRegistry } from "./providers/registry.js";

/** The RPC services this process serves (health and reflection are added by the platform). */
export function routes(deps: ServiceDeps<SearchConfig>, registry: ModelRegistry): ServiceRegistration[] {
  return [serve(SearchService, searchHandlers(deps, registry))];
}
