import type { UsageReporter } from "@promptcraft/client";
import type { QuotaGate, ServiceDeps, ServiceHandlers } from "@promptcraft/platform";
import type { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import type { ContentConfig } from "../config.js";
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
 * `renderQuota` refuses renders past the tenant's monthly render quota.
 */
export function contentHandlers(deps: ServiceDeps<ContentConfig>, usage?: UsageReporter, renderQuota?: QuotaGate): ServiceHandlers<typeof ContentService> {
  return { ...entityHandlers(deps, usage), ...revisionHandlers(deps), ...labelHandlers(deps), ...shareHandlers(deps), ...favoriteHandlers(deps), ...templateHandlers(deps, usage, renderQuota) };
}
