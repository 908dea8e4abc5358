import type { ServiceDeps, ServiceHandlers } from "@promptcraft/platform";
import type { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import type { ContentConfig } from "../config.js";

/**
 * Handlers of `promptcraft.content.v1.ContentService`. None is built yet: every method answers
 * UNIMPLEMENTED (the platform does that for a method without a handler), never made-up data.
 */
export function contentHandlers(_deps: ServiceDeps<ContentConfig>): ServiceHandlers<typeof ContentService> {
  return {};
}
