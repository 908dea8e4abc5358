import type { Logger } from "./logger.js";

/** A started {@link startIntervalJob}. */
export interface IntervalJob {
  /** Clears the timer, aborts the running pass's signal and waits for it to end. */
  stop(): Promise<void>;
}

/**
 * Runs `work` every `intervalMs` beside the server (identity's housekeeping, analytics' rollup
 * refresher, partition maintenance and read-model refresh): one pass at a time (a tick while a pass
 * is running is skipped), the timers unref'd, a failure logged as `<what> failed` (not while
 * stopping) and retried at the next tick. `options.atStart`: a first pass right away, for work that
 * must not wait a whole interval after a start (partitions for today's ingest).
 */
export function startIntervalJob(
  what: string,
  intervalMs: number,
  work: (signal: AbortSignal) => Promise<unknown>,
  log: Logger,
  options: { atStart?: boolean } = {},
): IntervalJob {
  let running: Promise<unknown> | undefined;
  const stopping = new AbortController();
  const tick = () => {
    if (running || stopping.signal.aborted) return;
    running = work(stopping.signal)
      .catch((err: unknown) => {
        if (!stopping.signal.aborted) log.warn({ err }, `${what} failed`);
      })
      .finally(() => (running = undefined));
  };
  const first = options.atStart ? setTimeout(tick, 0) : undefined;
  first?.unref();
  const timer = setInterval(tick, intervalMs);
  timer.unref();
  return {
    async stop() {
      clearTimeout(first);
      clearInterval(timer);
      stopping.abort(new Error(`${what} stopped`));
      await running;
    },
  };
}
