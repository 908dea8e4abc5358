import { randomBytes } from "node:crypto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createClient, type Client } from "@connectrpc/connect";
import { Http2SessionManager } from "@connectrpc/connect-node";
import { trace, type Context, type Tracer } from "@opentelemetry/api";
import { AnalyticsService } from "@promptcraft/proto/promptcraft/analytics/v1/analytics_service_pb";
import type { UsageEventSchema } from "@promptcraft/proto/promptcraft/analytics/v1/resources_pb";
import { createServiceTransport } from "./index.js";

/** A usage event to report: the contract's UsageEvent; `id` and `occur_time` are filled in when absent. */
export type UsageEventInit = Omit<MessageInitShape<typeof UsageEventSchema>, "$typeName" | "$unknown">;

/** Something that counts (a prom-client Counter fits). */
export interface Counter {
  inc(value?: number): void;
}

/** Options of {@link UsageReporter}. */
export interface UsageReporterOptions {
  /** Analytics' gRPC URL (`http://127.0.0.1:50055`). */
  analyticsUrl: string;
  /** The service credential (SERVICE_TOKEN) and the name the reporter gives (`content`). */
  serviceToken: string;
  serviceName: string;
  /** Events kept in memory while analytics is unreachable; past it new events are dropped, counted and logged. Default 10,000. */
  maxBuffered?: number;
  /** A stream is closed (and its events known committed) after this long… Default 1000 ms. */
  streamMs?: number;
  /** …or after this many events. Default 500. */
  streamEvents?: number;
  /** Events per message on a stream. Default 100. */
  messageEvents?: number;
  /** First and longest wait before retrying a broken stream (doubling in between). Default 200 ms and 5 s. */
  retryMinMs?: number;
  retryMaxMs?: number;
  /** Traces each stream (a CLIENT span); events carry the trace of the call that caused them anyway. */
  tracer?: Tracer;
  /** Where the reporter says what goes wrong (pino fits). */
  log?: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
  /** Counters: events acknowledged by analytics, and events dropped past `maxBuffered`. */
  counters?: { sent?: Counter; dropped?: Counter };
}

/**
 * Streams a service's usage events to analytics (issue 11, point 2) without ever making the
 * service's own calls wait or fail: {@link report} only appends to a bounded in-memory buffer.
 *
 * One stream at a time: StreamUsageEvents is opened when there is something to send, keeps
 * sending what arrives for up to `streamMs` or `streamEvents`, and is then closed, so that its
 * response says the events were committed (a client stream answers only at its end). A broken
 * stream — analytics down, restarting, a lost connection — is retried with the same events and
 * ids after a backoff: analytics counts the ones it already committed as duplicates, so nothing
 * is lost or counted twice. While analytics stays away, events wait in the buffer; past
 * `maxBuffered` new ones are dropped, counted in `counters.dropped` and logged (once per
 * stream attempt with the count since), never silently. {@link close} flushes what it can in
 * the time it is given.
 */
export class UsageReporter {
  private readonly client: Client<typeof AnalyticsService>;
  private readonly sessions: Http2SessionManager;
  private readonly options: Required<Pick<UsageReporterOptions, "maxBuffered" | "streamMs" | "streamEvents" | "messageEvents" | "retryMinMs" | "retryMaxMs">> & UsageReporterOptions;
  /** Waiting to be sent (oldest first). */
  private buffer: UsageEventInit[] = [];
  /** Sent on the open stream, not yet acknowledged; back to the front of the buffer if it breaks. */
  private inFlight: UsageEventInit[] = [];
  private droppedSinceLog = 0;
  private wake: (() => void) | undefined;
  private closing = false;
  private readonly loop: Promise<void>;
  private readonly stopped = new AbortController();
  /** Totals, for tests and logs. */
  readonly totals = { reported: 0, sent: 0, dropped: 0, failedStreams: 0 };

  constructor(options: UsageReporterOptions) {
    this.options = { maxBuffered: 10_000, streamMs: 1000, streamEvents: 500, messageEvents: 100, retryMinMs: 200, retryMaxMs: 5000, ...options };
    this.sessions = new Http2SessionManager(options.analyticsUrl, { idleConnectionTimeoutMs: 30_000 });
    this.client = createClient(AnalyticsService, createServiceTransport(options.analyticsUrl, { sessionManager: this.sessions, tracer: options.tracer }));
    this.loop = this.run();
  }

  /** Events not yet acknowledged by analytics (buffered or on the open stream). */
  get pending(): number {
    return this.buffer.length + this.inFlight.length;
  }

  /**
   * Queues one event; never blocks, never throws. Gives it an id (UUIDv7) and `occur_time` (now)
   * when it has none, and the trace of `traceContext` (the call that caused it) in its metadata.
   */
  report(event: UsageEventInit, traceContext?: Context): void {
    this.totals.reported++;
    if (this.closing || this.pending >= this.options.maxBuffered) {
      this.totals.dropped++;
      this.droppedSinceLog++;
      this.options.counters?.dropped?.inc();
      return;
    }
    const span = traceContext ? trace.getSpanContext(traceContext) : undefined;
    this.buffer.push({
      ...event,
      id: event.id || uuidv7(),
      occurTime: event.occurTime ?? timestampFromDate(new Date()),
      ...(span ? { metadata: { ...(event.metadata ?? {}), trace_id: span.traceId, span_id: span.spanId } } : {}),
    });
    this.wake?.();
  }

  /**
   * Stops taking events and sends what is pending for at most `timeoutMs` (graceful shutdown);
   * what is still pending then is counted as dropped and logged.
   */
  async close(timeoutMs = 1000): Promise<void> {
    this.closing = true;
    this.wake?.();
    const timer = new Promise<void>((resolve) => setTimeout(resolve, timeoutMs).unref());
    await Promise.race([this.drained(), timer]);
    this.stopped.abort();
    await this.loop.catch(() => {});
    this.sessions.abort();
    const lost = this.pending;
    if (lost > 0) {
      this.totals.dropped += lost;
      this.options.counters?.dropped?.inc(lost);
      this.options.log?.warn({ lost }, "usage reporter: analytics unreachable at shutdown, usage events lost");
    }
  }

  /** Resolves once everything reported so far is acknowledged (tests, shutdown). */
  async drained(): Promise<void> {
    while (this.pending > 0 && !this.stopped.signal.aborted) await sleep(20, this.stopped.signal);
  }

  private async run(): Promise<void> {
    let backoff = this.options.retryMinMs;
    while (!this.stopped.signal.aborted) {
      if (this.buffer.length === 0) {
        if (this.closing) return;
        await this.waitForEvents(undefined);
        continue;
      }
      this.logDrops();
      // A stream's message generator may outlive its call (suspended in a wait when the call
      // fails): once `open` is false it takes nothing more from the buffer.
      const stream = { open: true };
      try {
        const response = await this.client.streamUsageEvents(this.messages(stream), {
          headers: { authorization: `Bearer ${this.options.serviceToken}`, "x-promptcraft-service": this.options.serviceName },
          signal: this.stopped.signal,
        });
        const sent = this.inFlight.length;
        this.inFlight = [];
        this.totals.sent += sent;
        this.options.counters?.sent?.inc(sent);
        void response;
        backoff = this.options.retryMinMs;
      } catch (err) {
        // Not acknowledged: back to the front, same ids; analytics dedupes what it had committed.
        this.buffer = [...this.inFlight, ...this.buffer];
        this.inFlight = [];
        this.totals.failedStreams++;
        if (this.totals.failedStreams === 1 || this.totals.failedStreams % 20 === 0) {
          this.options.log?.warn({ err: (err as Error).message, pending: this.pending, failedStreams: this.totals.failedStreams }, "usage reporter: stream to analytics failed, retrying");
        }
        if (this.stopped.signal.aborted) return;
        await sleep(backoff, this.stopped.signal);
        backoff = Math.min(backoff * 2, this.options.retryMaxMs);
      } finally {
        stream.open = false;
      }
    }
  }

  /** Resolves when an event is reported, the reporter stops, or after `ms` (if given). */
  private waitForEvents(ms: number | undefined): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = ms === undefined ? undefined : setTimeout(() => done(), ms);
      timer?.unref();
      const done = () => {
        clearTimeout(timer);
        this.stopped.signal.removeEventListener("abort", done);
        if (this.wake === done) this.wake = undefined;
        resolve();
      };
      this.wake = done;
      this.stopped.signal.addEventListener("abort", done, { once: true });
    });
  }

  /** One stream's messages: what is buffered, then what arrives, until `streamMs` or `streamEvents`. */
  private async *messages(stream: { open: boolean }): AsyncGenerator<{ events: UsageEventInit[] }> {
    const deadline = Date.now() + this.options.streamMs;
    let sent = 0;
    while (stream.open && sent < this.options.streamEvents) {
      if (this.buffer.length > 0) {
        const events = this.buffer.splice(0, Math.min(this.options.messageEvents, this.options.streamEvents - sent));
        this.inFlight.push(...events);
        sent += events.length;
        yield { events };
        continue;
      }
      const left = deadline - Date.now();
      if (left <= 0 || this.closing) return;
      await this.waitForEvents(left);
    }
  }

  private logDrops(): void {
    if (this.droppedSinceLog === 0) return;
    this.options.log?.warn({ dropped: this.droppedSinceLog, maxBuffered: this.options.maxBuffered }, "usage reporter: buffer full while analytics was unreachable, usage events dropped");
    this.droppedSinceLog = 0;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    timer.unref();
    signal.addEventListener("abort", done, { once: true });
  });
}

/** A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits; time-ordered ids keep the index tail hot. */
export function uuidv7(now = Date.now()): string {
  const b = randomBytes(16);
  b.writeUIntBE(now, 0, 6);
  b[6] = (b[6]! & 0x0f) | 0x70;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
