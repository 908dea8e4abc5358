import type { ServiceDeps, ServiceHandlers } from "@promptcraft/platform";
import type { GraphService } from "@promptcraft/proto/promptcraft/graph/v1/graph_service_pb";
import type { GraphConfig } from "../config.js";

/**
 * Handlers of `promptcraft.graph.v1.GraphService`. None is built yet: every method answers
 * UNIMPLEMENTED (the platform does that for a method without a handler), never made-up data.
 */
export function graphHandlers(_deps: ServiceDeps<GraphConfig>): ServiceHandlers<typeof GraphService> {
  return {};
}
