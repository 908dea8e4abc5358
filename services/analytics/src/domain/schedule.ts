import { AbortedError } from "@promptcraft/platform";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";

/**
 * A background job of analytics (partition maintenance, read-model refresh): one round at start and
 * one every `intervalMs`, never two at once in this process (a round still running makes the next
 * tick skip). Replicas coordinate inside the round (advisory locks). `round` handles its own errors.
 */
export function scheduleRounds(intervalMs: number, round: () => Promise<void>): { stop(): Promise<void> } {
  let running: Promise<void> | undefined;
  let stopped = false;
  const tick = () => {
    if (running || stopped) return;
    running = round().finally(() => (running = undefined));
  };
  const first = setTimeout(tick, 0);
  const timer = setInterval(tick, intervalMs);
  first.unref();
  timer.unref();
  return {
    async stop() {
      stopped = true;
      clearTimeout(first);
      clearInterval(timer);
      await running;
    },
  };
}

/**
 * When a caller refused with REFRESH_IN_PROGRESS may try again (`RetryInfo`): a maintenance round or
 * a refresh of today's volumes takes seconds.
 */
export const IN_PROGRESS_RETRY_MS = 5000;

/** ABORTED REFRESH_IN_PROGRESS: another replica (or call) is doing `what` right now. */
export function inProgress(what: string): AbortedError {
  return new AbortedError(`${what} is already running`, { reason: ErrorReason.REFRESH_IN_PROGRESS, retryAfterMs: IN_PROGRESS_RETRY_MS });
}

/** Whether `err` says another replica is doing this work right now (a round to skip quietly). */
export function isInProgress(err: unknown): boolean {
  return err instanceof AbortedError && err.reason === ErrorReason.REFRESH_IN_PROGRESS;
}
