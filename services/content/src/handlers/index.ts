import type { UsageReporter } from "@promptcraft/client";
import type { ServiceDeps, ServiceHandlers } from "@promptcraft/platform";
import type { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import type { ContentConfig } from "../config.js";
import type { GraphLookups } from "../graph-client.js";
import { entityHandlers } from "./entities.js";
import { favoriteHandlers } from "./favorites.js";
import { labelHandlers } from "./labels.js";
import { revisionHandlers } from "./revisions.js";
import { shareHandlers } from "./shares.js";
import { templateHandlers } from "./templates.js";

/**
 * Handlers of `promptcraft.content.v1.ContentService`, one file per area, spread together. A
 * method no area implements yet answers UNIMPLEMENTED (the platform does that), never made-up data.
 * `usage` reports reads by label and renders to analytics (off without a service credential);
 * `graph` is asked before a delete and for a template's partials (off without GRAPH_URL).
 */
export function contentHandlers(deps: ServiceDeps<ContentConfig>, usage?: UsageReporter, graph?: GraphLookups): ServiceHandlers<typeof ContentService> {
  return { ...entityHandlers(deps, usage, graph), ...revisionHandlers(deps), ...labelHandlers(deps), ...shareHandlers(deps), ...favoriteHandlers(deps), ...templateHandlers(deps, usage, graph) };
}
