import { serve, type ServiceDeps, type ServiceRegistration } from "@promptcraft/platform";
import { SearchService } from "@promptcraft/proto/promptcraft/search/v1/search_service_pb";
import type { SearchConfig } from "./config.js";
import { searchHandlers } from "./handlers/index.js";
import type { UsageReporter } from "@promptcraft/client";
import type { ModelRegistry } from "./providers/registry.js";

/** What search keeps while it runs: its models and its usage reporter (undefined when reporting is off). */
export interface SearchState {
  registry: ModelRegistry;
  usage: UsageReporter | undefined;
}

/** The RPC services this process serves (health and reflection are added by the platform). */
export function routes(deps: ServiceDeps<SearchConfig>, state: SearchState): ServiceRegistration[] {
  return [serve(SearchService, searchHandlers(deps, state))];
}
