import { callerOf, type ServiceDeps, type ServiceHandlers } from "@promptcraft/platform";
import type { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import type { ContentConfig } from "../config.js";
import { MAX_RENDERED_BYTES, renderEntity } from "../domain/render.js";
import { entityRefOf, selectorOf } from "./entities.js";

/** ContentService.RenderTemplate (rules in domain/render.ts). Read-only: no version, no event. */
export function templateHandlers(deps: ServiceDeps<ContentConfig>): ServiceHandlers<typeof ContentService> {
  return {
    renderTemplate: async (request, ctx) => {
      const { row, rendered } = await renderEntity(deps.db, callerOf(ctx), entityRefOf(request), selectorOf(request), request.variables ?? {}, {
        strict: request.strict,
        maxBytes: MAX_RENDERED_BYTES,
      });
      return {
        text: rendered.text,
        entityId: row.id,
        name: row.name,
        version: row.version,
        contentHash: row.content_hash,
        missingVariables: rendered.missingVariables,
        unusedVariables: rendered.unusedVariables,
      };
    },
  };
}
