import { durationFromMs } from "@bufbuild/protobuf/wkt";
import type { UsageReporter } from "@promptcraft/client";
import { reportCallUsage, type CallContext } from "@promptcraft/platform";
import { UsageKind } from "@promptcraft/proto/promptcraft/analytics/v1/resources_pb";

/**
 * Reports one ResolveDependencies to analytics (`resolve` usage of the root entity: how many
 * dependency entries, whether complete, whether as of a past time, and how long it took). Only
 * queues it: a resolution never waits or fails because of analytics.
 */
export function reportResolve(
  usage: UsageReporter | undefined,
  ctx: CallContext,
  what: { entityId: string; latencyMs: number; dependencies: number; complete: boolean; asOf: boolean },
): void {
  reportCallUsage(usage, ctx, {
    kind: UsageKind.RESOLVE,
    entityId: what.entityId,
    latency: durationFromMs(Math.round(what.latencyMs)),
    metadata: { dependencies: what.dependencies, complete: what.complete, as_of: what.asOf },
  });
}
