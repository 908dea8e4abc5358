import { UsageReporter, type UsageEventInit } from "@promptcraft/client";
import client from "prom-client";
import { callerOf } from "./authz.js";
import type { CallContext } from "./context.js";
import { BACKGROUND_STOP_MS, type BaseServiceConfig } from "./service.js";
import type { Logger } from "./logger.js";

/** A service's usage reporter and the metrics it adds to the service's `/metrics`. */
export interface UsageReporting {
  /** Undefined when reporting is off (no SERVICE_TOKEN): report nothing, say so once at start. */
  reporter: UsageReporter | undefined;
  metrics: client.Metric[];
  /** Flushes and stops the reporter within most of BACKGROUND_STOP_MS, the time a service's close() gets. */
  close(): Promise<void>;
}

/** Of BACKGROUND_STOP_MS, what the final flush may take (the rest is for the service's other closing work). */
const FLUSH_MS = BACKGROUND_STOP_MS - 200;

/**
 * The usage reporter of service `name` (`@promptcraft/client`'s UsageReporter to ANALYTICS_URL
 * with the service credential), with `promptcraft_usage_events_sent_total` and
 * `promptcraft_usage_events_dropped_total` for its ServiceSetup.metrics. Without SERVICE_TOKEN it
 * is off, and the start-up log says so (a deployment without the secret reports no usage).
 */
export function usageReporting(config: BaseServiceConfig, name: string, log: Logger): UsageReporting {
  if (config.SERVICE_TOKEN === undefined) {
    log.warn("usage reporting off: SERVICE_TOKEN is not set (set the same secret on every service, analytics included)");
    return { reporter: undefined, metrics: [], close: () => Promise.resolve() };
  }
  const sent = new client.Counter({ name: "promptcraft_usage_events_sent_total", help: "Usage events acknowledged by analytics.", registers: [] });
  const dropped = new client.Counter({
    name: "promptcraft_usage_events_dropped_total",
    help: "Usage events lost: the in-memory buffer was full while analytics was unreachable, or they were still pending at shutdown.",
    registers: [],
  });
  const reporter = new UsageReporter({
    analyticsUrl: config.ANALYTICS_URL,
    serviceToken: config.SERVICE_TOKEN,
    serviceName: name,
    maxBuffered: config.USAGE_BUFFER_MAX,
    log: log.child({ component: "usage-reporter" }),
    counters: { sent, dropped },
  });
  log.info({ analytics: config.ANALYTICS_URL }, "usage reporting to analytics");
  return { reporter, metrics: [sent, dropped], close: () => reporter.close(FLUSH_MS) };
}

/**
 * Reports one use made by call `ctx` to analytics: the tenant, the user and the request id are the
 * call's, its trace goes into the event's metadata. Only queues it (the reporter streams in the
 * background): the call never waits or fails because of analytics. Nothing when reporting is off.
 */
export function reportCallUsage(usage: UsageReporter | undefined, ctx: CallContext, event: Omit<UsageEventInit, "tenantId" | "userId" | "requestId">): void {
  if (!usage) return;
  const caller = callerOf(ctx);
  usage.report({ ...event, tenantId: caller.tenantId, userId: caller.userId ?? "", requestId: ctx.requestId }, ctx.traceContext);
}
