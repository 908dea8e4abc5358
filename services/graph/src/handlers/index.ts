import type { ServiceDeps, ServiceHandlers } from "@promptcraft/platform";
import type { GraphService } from "@promptcraft/proto/promptcraft/graph/v1/graph_service_pb";
import type { GraphConfig } from "../config.js";
import { relationshipHandlers } from "./relationships.js";
import { traversalHandlers } from "./traversal.js";

/**
 * Handlers of `promptcraft.graph.v1.GraphService`, one file per area, spread together. A method no
 * area implements yet (the suggestions) answers UNIMPLEMENTED (the platform does that), never
 * made-up data.
 */
export function graphHandlers(deps: ServiceDeps<GraphConfig>): ServiceHandlers<typeof GraphService> {
  return { ...relationshipHandlers(deps), ...traversalHandlers(deps) };
}
