import { serve, type ServiceDeps, type ServiceRegistration } from "@promptcraft/platform";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import type { ContentConfig } from "./config.js";
import type { ContentState } from "./index.js";
import { contentHandlers } from "./handlers/index.js";

/** The RPC services this process serves (health and reflection are added by the platform). */
export function routes(deps: ServiceDeps<ContentConfig>, state: ContentState): ServiceRegistration[] {
  return [serve(ContentService, contentHandlers(deps, state.usage, state.graph))];
}
