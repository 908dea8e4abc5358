import { serve, type ServiceDeps, type ServiceRegistration } from "@promptcraft/platform";
import { GraphService } from "@promptcraft/proto/promptcraft/graph/v1/graph_service_pb";
import type { GraphConfig } from "./config.js";
import { graphHandlers } from "./handlers/index.js";
import type { GraphState } from "./index.js";

/** The RPC services this process serves (health and reflection are added by the platform). */
export function routes(deps: ServiceDeps<GraphConfig>, state: GraphState): ServiceRegistration[] {
  return [serve(GraphService, graphHandlers(deps, state))];
}
