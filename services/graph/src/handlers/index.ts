import type { ServiceDeps, ServiceHandlers } from "@promptcraft/platform";
import type { GraphService } from "@promptcraft/proto/promptcraft/graph/v1/graph_service_pb";
import type { GraphConfig } from "../config.js";
import type { GraphState } from "../index.js";
import { relationshipHandlers } from "./relationships.js";
import { suggestionHandlers } from "./suggestions.js";
import { traversalHandlers } from "./traversal.js";

/** Handlers of `promptcraft.graph.v1.GraphService`, one file per area, spread together. */
export function graphHandlers(deps: ServiceDeps<GraphConfig>, state: GraphState): ServiceHandlers<typeof GraphService> {
  return { ...relationshipHandlers(deps), ...traversalHandlers(deps, state), ...suggestionHandlers(deps, state) };
}
