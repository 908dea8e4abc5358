import pg from "pg";

/** Options for {@link DatabaseProbe}. */
export interface DatabaseProbeOptions {
  /** PostgreSQL connection URL (the service's `DATABASE_URL`). */
  url: string;
  /** Shown in `pg_stat_activity.application_name`. */
  applicationName?: string;
  /** Longest a check may take, connecting included (default 2000 ms). */
  timeoutMs?: number;
}

/**
 * A cheap reachability check of the database: `select 1` on one connection of its own, kept open
 * between checks and reopened after a failure. It stays outside the service's pool on purpose: a
 * pool that is merely busy must not look like a database that is down.
 */
export class DatabaseProbe {
  private client: pg.Client | undefined;
  private closed = false;

  constructor(private readonly options: DatabaseProbeOptions) {}

  /** Resolves when the database answered within the timeout; rejects with the driver's error otherwise. */
  async check(): Promise<void> {
    if (this.closed) throw new Error("probe closed");
    const timeoutMs = this.options.timeoutMs ?? 2000;
    try {
      this.client ??= await this.connect(timeoutMs);
      await this.client.query("select 1");
    } catch (err) {
      this.drop();
      throw err;
    }
  }

  /**
   * Closes the probe's connection; further checks fail. Does not wait for the server to acknowledge
   * (a server that is unreachable never would): shutdown must not hang on the probe.
   */
  close(): void {
    this.closed = true;
    this.drop();
  }

  private async connect(timeoutMs: number): Promise<pg.Client> {
    const client = new pg.Client({
      connectionString: this.options.url,
      application_name: this.options.applicationName ?? "promptcraft-probe",
      connectionTimeoutMillis: timeoutMs,
      query_timeout: timeoutMs,
      keepAlive: true,
    });
    // A lost connection is reported by the next check; an unhandled 'error' would crash the process.
    client.on("error", () => this.drop(client));
    try {
      await client.connect();
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      throw new Error("probe closed");
    }
    return client;
  }

  private drop(client = this.client): void {
    if (client === undefined) return;
    if (this.client === client) this.client = undefined;
    client.end().catch(() => undefined);
  }
}
