import { setTimeout as sleep } from "node:timers/promises";
import { createServiceClient, ConnectError, type Client } from "@promptcraft/client";
import { ErrorInfoSchema, RetryInfoSchema } from "@promptcraft/proto/google/rpc/error_details_pb";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "@promptcraft/proto/grpc/health/v1/health_pb";
import { Code } from "@connectrpc/connect";

/**
 * Helpers of the database-outage tests: a load of calls that records every outcome, a health
 * watcher that records every status a service reports, and a bounded poll.
 */

/** One call's outcome as the outage tests judge it. */
export interface CallOutcome {
  worker: string;
  /** Sequence number in the whole run (orders outcomes across workers). */
  seq: number;
  ok: boolean;
  code?: string;
  reason?: string;
  dependency?: string;
  /** The RetryInfo delay, when the error carried one. */
  retryDelayMs?: number;
  message?: string;
}

/** Runs each worker in a loop until {@link stop}, recording every outcome. */
export class Load {
  readonly outcomes: CallOutcome[] = [];
  private seq = 0;
  private stopped = false;
  private running: Promise<void>[] = [];

  constructor(private readonly workers: Record<string, () => Promise<unknown>>) {}

  start(): void {
    this.running = Object.entries(this.workers).map(async ([worker, call]) => {
      while (!this.stopped) {
        const outcome = await call().then(
          () => ({ worker, seq: this.seq++, ok: true }),
          (err: unknown) => ({ worker, seq: this.seq++, ...describeFailure(err) }),
        );
        this.outcomes.push(outcome);
        // Failures can be immediate (connection refused): do not spin.
        if (!outcome.ok) await sleep(5);
      }
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.running);
  }

  /** The current sequence number: outcomes after it happened after this moment. */
  mark(): number {
    return this.seq;
  }

  failures(): CallOutcome[] {
    return this.outcomes.filter((o) => !o.ok);
  }

  /** Whether every worker has succeeded (at least `times` times) since `mark`. */
  allSucceededSince(mark: number, times = 1): boolean {
    return Object.keys(this.workers).every((w) => this.outcomes.filter((o) => o.worker === w && o.ok && o.seq >= mark).length >= times);
  }

  /** Failed calls that are not UNAVAILABLE with DEPENDENCY_UNAVAILABLE(`dependency`) and a RetryInfo delay. */
  unexpectedFailures(dependencies: readonly string[]): CallOutcome[] {
    return this.failures().filter(
      (o) => o.code !== "Unavailable" || o.reason !== "DEPENDENCY_UNAVAILABLE" || !dependencies.includes(o.dependency ?? "") || !(o.retryDelayMs! > 0),
    );
  }
}

function describeFailure(err: unknown): Omit<CallOutcome, "worker" | "seq"> {
  const e = ConnectError.from(err);
  const info = e.findDetails(ErrorInfoSchema)[0];
  const retry = e.findDetails(RetryInfoSchema)[0]?.retryDelay;
  return {
    ok: false,
    code: Code[e.code],
    reason: info?.reason,
    dependency: info?.metadata.dependency,
    retryDelayMs: retry ? Number(retry.seconds) * 1000 + retry.nanos / 1e6 : undefined,
    message: e.rawMessage,
  };
}

/** Every status a server reports for `service` on a `grpc.health.v1.Health/Watch` stream. */
export class HealthWatch {
  readonly seen: ServingStatus[] = [];
  /** Why the stream ended, if the test did not end it. */
  error: unknown;
  private readonly abort = new AbortController();
  private readonly done: Promise<void>;

  constructor(grpcPort: number, service = "") {
    const client: Client<typeof Health> = createServiceClient(Health, `http://127.0.0.1:${grpcPort}`);
    this.done = (async () => {
      try {
        for await (const { status } of client.watch({ service }, { signal: this.abort.signal })) this.seen.push(status);
      } catch (err) {
        // Closed by the test (CANCELED), or the server went away: what was seen stays.
        if (ConnectError.from(err).code !== Code.Canceled) this.error = err;
      }
    })();
  }

  get last(): ServingStatus | undefined {
    return this.seen.at(-1);
  }

  /** Whether NOT_SERVING was reported, and SERVING after it. */
  get recovered(): boolean {
    const down = this.seen.indexOf(ServingStatus.NOT_SERVING);
    return down !== -1 && this.seen.indexOf(ServingStatus.SERVING, down) !== -1;
  }

  async close(): Promise<void> {
    this.abort.abort();
    await this.done;
  }
}

/** Polls `condition` every 50 ms until it holds; fails naming `what` if it does not within `limitMs`. */
export async function until(what: string, condition: () => boolean | Promise<boolean>, limitMs = 60_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting: ${what}`);
    await sleep(50);
  }
}

/** A readable summary of outcomes (for assertion messages). */
export function summary(outcomes: readonly CallOutcome[]): string {
  const counts = new Map<string, number>();
  for (const o of outcomes) {
    const key = o.ok ? `${o.worker} OK` : `${o.worker} ${o.code} ${o.reason ?? "-"} ${o.dependency ?? "-"} retry=${o.retryDelayMs ?? "-"} ${o.message ?? ""}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].map(([k, n]) => `${n} × ${k}`).join("\n");
}

export { ServingStatus };
