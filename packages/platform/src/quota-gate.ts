import { createServiceClient, withTraceContext, type Client } from "@promptcraft/client";
import { Http2SessionManager } from "@connectrpc/connect-node";
import { AnalyticsService } from "@promptcraft/proto/promptcraft/analytics/v1/analytics_service_pb";
import { QuotaMetric } from "@promptcraft/proto/promptcraft/analytics/v1/resources_pb";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import client from "prom-client";
import { callerOf } from "./authz.js";
import type { CallContext } from "./context.js";
import { ExpiringCache } from "./credentials.js";
import { ResourceExhaustedError } from "./errors.js";
import { briefError, LogThrottle } from "./log-throttle.js";
import type { Logger } from "./logger.js";

/** Options of {@link QuotaGate}. */
export interface QuotaGateOptions {
  /** Analytics' gRPC URL (ANALYTICS_URL). */
  analyticsUrl: string;
  /** The monthly metric each allowed call consumes one unit of. */
  metric: QuotaMetric;
  /** How long analytics' answer for a tenant is reused (QUOTA_CACHE_MS); 0 asks on every call. */
  cacheMs: number;
  /** Deadline of a CheckQuota call (QUOTA_CHECK_TIMEOUT_MS), shortened to the caller's own. */
  timeoutMs: number;
  log: Logger;
}

/** What the gate knows of one tenant's quota: analytics' answer, or that it gave none. */
type Knowledge =
  | { checked: false }
  /** `remaining` undefined: unlimited. Decremented here by each call allowed while cached. */
  | { checked: true; limit: bigint | undefined; remaining: bigint | undefined; resetTime: Date | undefined };

const MAX_TENANTS = 10_000;

/**
 * A service's check of one tenant quota before costly work (issue 11, point 4: content's renders),
 * the one place the rule lives: {@link consume} asks analytics' CheckQuota with the caller's own
 * credentials, through `@promptcraft/client`, and refuses with RESOURCE_EXHAUSTED
 * (ERROR_REASON_QUOTA_EXCEEDED, QuotaFailure, RetryInfo until the window resets) when the tenant has
 * a limit and nothing left of it.
 *
 * Staleness: an answer is reused for `cacheMs` per tenant (one CheckQuota per tenant per window,
 * concurrent calls sharing it), and each call allowed meanwhile takes one unit off the cached
 * remainder, so one replica stops at the limit exactly; across replicas, and for usage reported
 * elsewhere, the overshoot is bounded by what they allow within `cacheMs` plus the usage
 * reporter's flush delay (about a second).
 *
 * Analytics unreachable, slow past `timeoutMs`, or failing: the call is allowed unchecked, counted
 * in `promptcraft_quota_check_failures_total` and logged at most once per 10 s, and that is
 * remembered for `cacheMs` too, so calls do not wait on a peer that is down.
 */
export class QuotaGate {
  readonly metrics: client.Metric[];
  private readonly analytics: Client<typeof AnalyticsService>;
  private readonly sessions: Http2SessionManager;
  private readonly cache: ExpiringCache<Knowledge>;
  private readonly throttle: LogThrottle;
  private readonly failures: client.Counter;
  private readonly refusals: client.Counter;
  private readonly metricName: string;

  constructor(private readonly options: QuotaGateOptions) {
    this.metricName = `QUOTA_METRIC_${QuotaMetric[options.metric]}`;
    this.sessions = new Http2SessionManager(options.analyticsUrl, { idleConnectionTimeoutMs: 30_000 });
    this.analytics = createServiceClient(AnalyticsService, options.analyticsUrl, { sessionManager: this.sessions });
    this.cache = new ExpiringCache<Knowledge>({ ttlMs: options.cacheMs, maxEntries: MAX_TENANTS });
    this.throttle = new LogThrottle(options.log);
    this.failures = new client.Counter({
      name: "promptcraft_quota_check_failures_total",
      help: "CheckQuota calls to analytics that failed or timed out; the calls they covered were allowed unchecked.",
      labelNames: ["metric"] as const,
      registers: [],
    });
    this.refusals = new client.Counter({
      name: "promptcraft_quota_refusals_total",
      help: "Calls refused with RESOURCE_EXHAUSTED because the tenant's quota was used up.",
      labelNames: ["metric"] as const,
      registers: [],
    });
    this.metrics = [this.failures, this.refusals];
  }

  /**
   * Takes one unit of the caller's tenant's quota, or throws RESOURCE_EXHAUSTED when none is left.
   * Never fails because analytics cannot answer.
   */
  async consume(ctx: CallContext): Promise<void> {
    const caller = callerOf(ctx);
    const authorization = ctx.header("authorization");
    const known = await this.cache.get(caller.tenantId, () => this.ask(caller.tenantId, authorization, ctx));
    if (!known.checked || known.remaining === undefined) return;
    if (known.remaining > 0n) {
      known.remaining--;
      return;
    }
    this.refusals.inc({ metric: this.metricName });
    const limit = String(known.limit ?? 0n);
    const resets = known.resetTime ? `; it resets at ${known.resetTime.toISOString()}` : "";
    throw new ResourceExhaustedError(`the tenant's quota ${this.metricName} (${limit}) is used up${resets}`, {
      reason: ErrorReason.QUOTA_EXCEEDED,
      metadata: { metric: this.metricName, limit },
      quotaViolations: [{ subject: `tenant:${caller.tenantId}`, description: `${this.metricName}: ${limit} of ${limit} used${resets}` }],
      ...(known.resetTime ? { retryAfterMs: Math.max(0, known.resetTime.getTime() - Date.now()) } : {}),
    });
  }

  /** Stops the connection to analytics (shutdown). */
  close(): void {
    this.throttle.flush();
    this.sessions.abort();
  }

  private async ask(tenantId: string, authorization: string | undefined, ctx: CallContext): Promise<Knowledge> {
    const timeoutMs = Math.max(1, Math.min(this.options.timeoutMs, ctx.deadline === undefined ? Infinity : ctx.deadline - Date.now()));
    try {
      const answer = await this.analytics.checkQuota(
        { metric: this.options.metric, amount: 1n },
        { timeoutMs, headers: authorization ? { authorization, "x-request-id": ctx.requestId } : {}, ...withTraceContext(ctx.traceContext) },
      );
      const q = answer.quota;
      if (q?.limit === undefined) return { checked: true, limit: undefined, remaining: undefined, resetTime: undefined };
      return { checked: true, limit: q.limit, remaining: q.remaining ?? 0n, resetTime: q.resetTime ? new Date(Number(q.resetTime.seconds) * 1000) : undefined };
    } catch (err) {
      this.failures.inc({ metric: this.metricName });
      this.throttle.write("warn", "quota-check", { tenantId, metric: this.metricName, error: briefError(err) }, "quota check: analytics did not answer, call allowed unchecked");
      return { checked: false };
    }
  }
}
