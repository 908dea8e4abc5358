import type { Logger } from "./logger.js";

/** A started {@link startIntervalJob}. */
export interface IntervalJob {
  /** Clears the timer, aborts the running pass's signal and waits for it to end. */
  stop(): Promise<void>;
}

/**
 * Runs `work` every `intervalMs` beside the server (identity's housekeeping, analytics' rollup
 * refresher): one pass at a time (a tick while a pass is running is skipped), the timer unref'd, a
 * failure logged as `<what> failed` (not while stopping) and retried at the next tick.
 */
export function startIntervalJob(what: string, intervalMs: number, work: (signal: AbortSignal) => Promise<unknown>, log: Logger): IntervalJob {
  let running: Promise<unknown> | undefined;
  const stopping = new AbortController();
  const timer = setInterval(() => {
    if (running) return;
    running = work(stopping.signal)
      .catch((err: unknown) => {
        if (!stopping.signal.aborted) log.warn({ err }, `${what} failed`);
      })
      .finally(() => (running = undefined));
  }, intervalMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      stopping.abort(new Error(`${what} stopped`));
      await running;
    },
  };
}
