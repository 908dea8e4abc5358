import type { Logger } from "pino";
import { briefError } from "./log-throttle.js";
import { ServingStatus, type HealthState } from "./health.js";

/** What {@link DatabaseHealth} needs. */
export interface DatabaseHealthOptions {
  /** Resolves when the database answers, rejects when it does not (with its own timeout). */
  probe: () => Promise<void>;
  /** Time between probes. */
  intervalMs: number;
  log: Logger;
}

/**
 * Readiness that follows the database. A probe runs every `intervalMs`, and at once when a call
 * failed because the database seemed unreachable ({@link suspect}); a failed probe turns the
 * service NOT_SERVING, the next successful one SERVING again — no restart needed, the pool
 * reconnects by itself. Liveness is not affected (`/healthz` answers while the process runs).
 *
 * A failed call alone does not flip the status: a terminated backend or a dropped connection
 * while the server is fine should not take a replica out of rotation; the probe decides.
 */
export class DatabaseHealth {
  private health: HealthState | undefined;
  private services: readonly string[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private reachable = true;
  /** A suspicion arrived while a probe ran: probe again when it ends. */
  private again = false;

  constructor(private readonly options: DatabaseHealthOptions) {}

  /** Whether the last probe reached the database (true until one fails). */
  get databaseReachable(): boolean {
    return this.reachable;
  }

  /**
   * Starts probing. Statuses are set on `health` (which the server has just set SERVING) for
   * `services`: "" (the server) and the service's own services.
   */
  start(health: HealthState, services: readonly string[]): void {
    this.health = health;
    this.services = services;
    this.schedule();
  }

  /**
   * A call failed on an unreachable database: probe now (or right after the probe that is running,
   * which may have started before the failure). Nothing to do while it is known to be down.
   */
  suspect(): void {
    if (this.stopped || !this.health || !this.reachable) return;
    if (this.running) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    void this.probeNow();
  }

  /**
   * Stops probing; the status is never changed again (shutdown sets NOT_SERVING for good after
   * this). Does not wait for a running probe: during an outage it may take its whole timeout, and
   * shutdown must not. Its result is ignored.
   */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.probeNow(), this.options.intervalMs);
    this.timer.unref();
  }

  private probeNow(): Promise<void> {
    this.running ??= this.options
      .probe()
      .then(
        () => this.update(true),
        (err: unknown) => this.update(false, err),
      )
      .finally(() => {
        this.running = undefined;
        if (this.again && this.reachable && !this.stopped) {
          this.again = false;
          void this.probeNow();
        } else {
          this.again = false;
          this.schedule();
        }
      });
    return this.running;
  }

  private update(reachable: boolean, err?: unknown): void {
    if (this.stopped || reachable === this.reachable) return;
    this.reachable = reachable;
    const status = reachable ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
    for (const service of this.services) this.health!.set(service, status);
    if (reachable) this.options.log.info("database reachable again: SERVING");
    else this.options.log.warn({ error: briefError(err) }, "database unreachable: NOT_SERVING until a probe succeeds");
  }
}
