import type { UsageEventInit, UsageReporter } from "@promptcraft/client";
import { callerOf, type CallContext } from "@promptcraft/platform";

/**
 * Reports one use of an entity to analytics (issue 11, point 2): `view` for a read by label (what
 * an SDK fetching `production` does), `render` for RenderTemplate. Only queues it (the reporter
 * streams in the background): the call never waits or fails because of analytics. The tenant, the
 * user and the request id are the call's; the trace of the call goes into the event's metadata.
 */
export function reportUsage(usage: UsageReporter | undefined, ctx: CallContext, event: Pick<UsageEventInit, "kind" | "entityId" | "entityVersion" | "label">): void {
  if (!usage) return;
  const caller = callerOf(ctx);
  usage.report({ ...event, tenantId: caller.tenantId, userId: caller.userId ?? "", requestId: ctx.requestId }, ctx.traceContext);
}
