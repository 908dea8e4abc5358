import { durationFromMs } from "@bufbuild/protobuf/wkt";
import type { UsageReporter } from "@promptcraft/client";
import { reportCallUsage, type CallContext } from "@promptcraft/platform";
import { UsageKind } from "@promptcraft/proto/promptcraft/analytics/v1/resources_pb";
import type { EmbeddedItem } from "../domain/pipeline.js";

/**
 * Reports one search to analytics (`search` usage: the model, the time it took, the mode and how many
 * results). Only queues it: a search never waits or fails because of analytics.
 */
export function reportSearch(usage: UsageReporter | undefined, ctx: CallContext, what: { model: string; latencyMs: number; mode: string; results: number; entityId?: string }): void {
  reportCallUsage(usage, ctx, {
    kind: UsageKind.SEARCH,
    entityId: what.entityId ?? "",
    model: what.model,
    latency: durationFromMs(Math.round(what.latencyMs)),
    metadata: { mode: what.mode, results: what.results },
  });
}

/** Reports the pipeline's embedding of one entity version (`embedding` usage, no user: background work). */
export function embeddingUsage(usage: UsageReporter | undefined): ((item: EmbeddedItem) => void) | undefined {
  if (!usage) return undefined;
  return (item) =>
    usage.report({
      kind: UsageKind.EMBEDDING,
      tenantId: item.tenantId,
      entityId: item.entityId,
      entityVersion: item.version,
      model: item.model,
      latency: durationFromMs(Math.round(item.latencyMs)),
    });
}
