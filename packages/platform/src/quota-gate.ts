import type { Tracer } from "@opentelemetry/api";
import { AnalyticsService } from "@promptcraft/proto/promptcraft/analytics/v1/analytics_service_pb";
import { QuotaMetric } from "@promptcraft/proto/promptcraft/analytics/v1/resources_pb";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import client from "prom-client";
import { callerOf } from "./authz.js";
import type { CallContext } from "./context.js";
import { ResourceExhaustedError } from "./errors.js";
import { briefError, LogThrottle } from "./log-throttle.js";
import type { Logger } from "./logger.js";
import { onBehalfOf, peerClient, type PeerClient } from "./peer.js";

/** Options of {@link QuotaGate}. */
export interface QuotaGateOptions {
  /** Analytics' gRPC URL (ANALYTICS_URL). */
  analyticsUrl: string;
  /** The monthly metric each allowed call consumes one unit of. */
  metric: QuotaMetric;
  /** How long analytics' answer for a tenant is fresh (QUOTA_CACHE_MS); 0 refreshes it on every call. */
  cacheMs: number;
  /** How long a tenant's first call waits for analytics' answer (QUOTA_CHECK_TIMEOUT_MS), cut to the caller's deadline. */
  timeoutMs: number;
  log: Logger;
  /** Traces the checks (the service's tracer); undefined when tracing is off. */
  tracer?: Tracer | undefined;
}

/** What the gate knows of one tenant's quota: analytics' answer, or that it gave none. */
type Knowledge =
  | { checked: false }
  /** `remaining` undefined: unlimited. Decremented here by each call allowed while cached. */
  | { checked: true; limit: bigint | undefined; remaining: bigint | undefined; resetTime: Date | undefined };

const UNCHECKED: Knowledge = { checked: false };
const MAX_TENANTS = 10_000;
/**
 * Deadline of a check nobody waits for (a refresh of a known tenant, or one a first call stopped
 * waiting for): long enough for analytics' month query on a large tenant.
 */
const BACKGROUND_TIMEOUT_MS = 10_000;

/**
 * A service's check of one tenant quota before costly work (issue 11, point 4: content's renders),
 * the one place the rule lives: {@link consume} asks analytics' CheckQuota on behalf of the caller
 * (their own credentials, request id and trace: peer.ts, over `@promptcraft/client`), and refuses with RESOURCE_EXHAUSTED
 * (ERROR_REASON_QUOTA_EXCEEDED, QuotaFailure, RetryInfo until the window resets) when the tenant has
 * a limit and nothing left of it.
 *
 * Staleness: an answer is fresh for `cacheMs` per tenant; past that the next call still decides on
 * it and refreshes it in the background (one CheckQuota per tenant at a time), so only a tenant's
 * first call ever waits on analytics, for at most `timeoutMs`. Each call allowed meanwhile takes one
 * unit off the known remainder, so one replica stops at the limit exactly; across replicas, and for
 * usage reported elsewhere, the overshoot is bounded by what they allow within `cacheMs` plus the
 * usage reporter's flush delay (about a second).
 *
 * Analytics unreachable or failing: the call is allowed unchecked (`promptcraft_quota_unchecked_total`),
 * the failure counted (`promptcraft_quota_check_failures_total`) and logged at most once per 10 s,
 * and "unchecked" is what the gate knows until the next refresh. A first call that waited
 * `timeoutMs` in vain is allowed unchecked too, while its check goes on in the background.
 */
export class QuotaGate {
  readonly metrics: client.Metric[];
  private readonly analytics: PeerClient<typeof AnalyticsService>;
  private readonly known = new Map<string, { knowledge: Knowledge; fetchedAt: number }>();
  private readonly inflight = new Map<string, Promise<Knowledge>>();
  private readonly throttle: LogThrottle;
  private readonly failures: client.Counter;
  private readonly unchecked: client.Counter;
  private readonly refusals: client.Counter;
  private readonly metricName: string;

  constructor(private readonly options: QuotaGateOptions) {
    this.metricName = `QUOTA_METRIC_${QuotaMetric[options.metric]}`;
    this.analytics = peerClient(AnalyticsService, options.analyticsUrl, options.tracer);
    this.throttle = new LogThrottle(options.log);
    const counter = (name: string, help: string) => new client.Counter({ name, help, labelNames: ["metric"] as const, registers: [] });
    this.failures = counter("promptcraft_quota_check_failures_total", "CheckQuota calls to analytics that failed or passed their deadline.");
    this.unchecked = counter("promptcraft_quota_unchecked_total", "Calls allowed without analytics' answer: analytics down, failing, or slower than the check's deadline.");
    this.refusals = counter("promptcraft_quota_refusals_total", "Calls refused with RESOURCE_EXHAUSTED because the tenant's quota was used up.");
    this.metrics = [this.failures, this.unchecked, this.refusals];
  }

  /**
   * Takes one unit of the caller's tenant's quota, or throws RESOURCE_EXHAUSTED when none is left.
   * Never fails because analytics cannot answer.
   */
  async consume(ctx: CallContext): Promise<void> {
    const caller = callerOf(ctx);
    const entry = this.known.get(caller.tenantId);
    // Stale: decide on it now, refresh it for the next calls.
    if (entry !== undefined && Date.now() - entry.fetchedAt >= this.options.cacheMs) void this.refresh(caller.tenantId, ctx);
    const knowledge = entry !== undefined ? entry.knowledge : await this.within(this.refresh(caller.tenantId, ctx), this.waitMs(ctx));
    if (!knowledge.checked) {
      this.unchecked.inc({ metric: this.metricName });
      return;
    }
    if (knowledge.remaining === undefined) return;
    if (knowledge.remaining > 0n) {
      knowledge.remaining--;
      return;
    }
    this.refusals.inc({ metric: this.metricName });
    const limit = String(knowledge.limit ?? 0n);
    const resets = knowledge.resetTime ? `; it resets at ${knowledge.resetTime.toISOString()}` : "";
    throw new ResourceExhaustedError(`the tenant's quota ${this.metricName} (${limit}) is used up${resets}`, {
      reason: ErrorReason.QUOTA_EXCEEDED,
      metadata: { metric: this.metricName, limit },
      quotaViolations: [{ subject: `tenant:${caller.tenantId}`, description: `${this.metricName}: ${limit} of ${limit} used${resets}` }],
      ...(knowledge.resetTime ? { retryAfterMs: Math.max(0, knowledge.resetTime.getTime() - Date.now()) } : {}),
    });
  }

  /** Stops the connection to analytics (shutdown). */
  close(): void {
    this.throttle.flush();
    this.analytics.close();
  }

  /** How long a first call waits for the answer: `timeoutMs`, cut to the caller's own deadline. */
  private waitMs(ctx: CallContext): number {
    return Math.max(0, Math.min(this.options.timeoutMs, ctx.deadline === undefined ? Infinity : ctx.deadline - Date.now()));
  }

  /** `answer`, or UNCHECKED if it takes longer than `ms`. */
  private async within(answer: Promise<Knowledge>, ms: number): Promise<Knowledge> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<Knowledge>((resolve) => (timer = setTimeout(() => resolve(UNCHECKED), ms)));
    try {
      return await Promise.race([answer, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Asks analytics for the tenant (one call per tenant at a time) and records the answer. */
  private refresh(tenantId: string, ctx: CallContext): Promise<Knowledge> {
    let pending = this.inflight.get(tenantId);
    if (pending === undefined) {
      pending = this.ask(tenantId, ctx).then((knowledge) => {
        this.inflight.delete(tenantId);
        this.known.delete(tenantId);
        if (this.known.size >= MAX_TENANTS) this.known.delete(this.known.keys().next().value!);
        this.known.set(tenantId, { knowledge, fetchedAt: Date.now() });
        return knowledge;
      });
      this.inflight.set(tenantId, pending);
    }
    return pending;
  }

  private async ask(tenantId: string, ctx: CallContext): Promise<Knowledge> {
    try {
      const answer = await this.analytics.client.checkQuota(
        { metric: this.options.metric, amount: 1n },
        // The caller's credentials, request id and trace, but not its signal or deadline: the answer
        // serves the tenant's next calls too, so it may outlive the call that asked.
        { ...onBehalfOf(ctx, BACKGROUND_TIMEOUT_MS), signal: undefined, timeoutMs: BACKGROUND_TIMEOUT_MS },
      );
      const q = answer.quota;
      if (q?.limit === undefined) return { checked: true, limit: undefined, remaining: undefined, resetTime: undefined };
      return { checked: true, limit: q.limit, remaining: q.remaining ?? 0n, resetTime: q.resetTime ? new Date(Number(q.resetTime.seconds) * 1000) : undefined };
    } catch (err) {
      this.failures.inc({ metric: this.metricName });
      this.throttle.write("warn", "quota-check", { tenantId, metric: this.metricName, error: briefError(err) }, "quota check: analytics did not answer, calls allowed unchecked");
      return UNCHECKED;
    }
  }
}
