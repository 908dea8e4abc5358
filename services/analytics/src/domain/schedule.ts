import { AbortedError } from "@promptcraft/platform";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";

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

/** For a scheduled round: another replica holding the round is nothing to report; any other failure is rethrown (and logged by the job). */
export function ignoreInProgress(err: unknown): void {
  if (!isInProgress(err)) throw err;
}
