import type { Logger } from "pino";

/**
 * Runs a service process: starts it, and on SIGTERM/SIGINT stops it gracefully (a second
 * Ctrl-C exits at once). A failed start or an unexpected error exits non-zero after logging why, so an
 * orchestrator restarts the process instead of leaving it half alive.
 *
 * Signal handlers are installed before the start begins: a signal that arrives while the service
 * is still starting (or just after it logged "serving") must still mean a graceful stop, never
 * the default of dying mid-flight.
 */
export function runProcess(
  name: string,
  log: Logger,
  start: () => Promise<{ close(): Promise<void> }>,
  options: {
    stopWhenStdinCloses?: boolean;
    /** After a stop signal, exit (code 1) if `close()` has not finished within this many ms. */
    stopWithinMs?: number;
  } = {},
): void {
  let stopping = false;
  let lastSignal: NodeJS.Signals | undefined;
  const fail = (err: unknown, what: string) => {
    log.fatal({ err }, what);
    process.exitCode = 1;
    setTimeout(() => process.exit(1), 100).unref();
  };
  process.on("uncaughtException", (err) => fail(err, "uncaught exception"));
  process.on("unhandledRejection", (err) => fail(err, "unhandled rejection"));

  const started = start();
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      // Ctrl-C reaches a whole process group, and a supervisor (npm start, docker) may follow
      // with SIGTERM: only the user pressing Ctrl-C again means "stop waiting".
      if (signal !== "SIGINT" || lastSignal !== "SIGINT") return;
      log.warn({ signal }, "second Ctrl-C: exiting now");
      process.exit(130);
    }
    stopping = true;
    lastSignal = signal;
    log.info({ signal }, `${name}: shutting down`);
    if (options.stopWithinMs !== undefined) {
      // The last line of defence: close() is bounded by design, and a shutdown that still hangs
      // must not outlive the orchestrator's patience.
      setTimeout(() => {
        log.error(`${name}: shutdown did not finish within ${options.stopWithinMs} ms; exiting`);
        process.exit(1);
      }, options.stopWithinMs).unref();
    }
    started
      .then((running) => running.close())
      .then(
        () => process.exit(0),
        (err: unknown) => fail(err, "shutdown failed"),
      );
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  if (options.stopWhenStdinCloses) {
    process.stdin.on("end", () => {
      log.info("supervisor gone (stdin closed)");
      stop("SIGTERM");
    });
    process.stdin.resume();
  }
  started.catch((err: unknown) => fail(err, `${name} failed to start`));
}
