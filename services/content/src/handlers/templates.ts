import type { UsageReporter } from "@promptcraft/client";
import { callerOf, type ServiceDeps, type ServiceHandlers } from "@promptcraft/platform";
import { UsageKind } from "@promptcraft/proto/promptcraft/analytics/v1/resources_pb";
import type { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import type { ContentConfig } from "../config.js";
import { renderEntity } from "../domain/compose.js";
import { MAX_RENDERED_BYTES } from "../domain/render.js";
import type { GraphLookups } from "../graph-client.js";
import { entityRefOf, selectorOf } from "./entities.js";
import { reportUsage } from "./usage.js";

/** ContentService.RenderTemplate (rules in domain/render.ts, partials in domain/compose.ts). Read-only: no version, no audit event; a `render` usage event. */
export function templateHandlers(deps: ServiceDeps<ContentConfig>, usage?: UsageReporter, graph?: GraphLookups): ServiceHandlers<typeof ContentService> {
  return {
    renderTemplate: async (request, ctx) => {
      const { row, rendered, receipt } = await renderEntity(
        deps.db,
        callerOf(ctx),
        entityRefOf(request),
        selectorOf(request),
        request.variables ?? {},
        { strict: request.strict, maxBytes: MAX_RENDERED_BYTES },
        graph?.dependenciesOf(ctx),
      );
      reportUsage(usage, ctx, { kind: UsageKind.RENDER, entityId: row.id, entityVersion: row.version, label: request.label ?? "" });
      return {
        text: rendered.text,
        entityId: row.id,
        name: row.name,
        version: row.version,
        contentHash: row.content_hash,
        missingVariables: rendered.missingVariables,
        unusedVariables: rendered.unusedVariables,
        receipt,
      };
    },
  };
}
