import type { Logger } from "pino";

/** Default length of a {@link LogThrottle} window. */
export const LOG_THROTTLE_WINDOW_MS = 10_000;

type Level = "error" | "warn" | "info";

interface Pending {
  level: Level;
  msg: string;
  fields: Record<string, unknown>;
  repeats: number;
  timer: NodeJS.Timeout;
}

/**
 * Keeps logs quiet under repeated failure: the first occurrence of a key is logged at once; its
 * repeats within the window are only counted, and one summary line per window
 * (`repeats: n`, with the latest occurrence's fields) reports them while they go on. A key that
 * stays quiet for a whole window is logged in full again at its next occurrence.
 *
 * For expected, repetitive conditions (a dependency that is down): one line per event would be a
 * line per failed call, thousands a minute under load.
 */
export class LogThrottle {
  private readonly pending = new Map<string, Pending>();
  private readonly windowMs: number;

  constructor(
    private readonly log: Logger,
    options: { windowMs?: number } = {},
  ) {
    this.windowMs = options.windowMs ?? LOG_THROTTLE_WINDOW_MS;
  }

  /** Logs `msg` with `fields` at `level`, or counts it if `key` was logged within the window. */
  write(level: Level, key: string, fields: Record<string, unknown>, msg: string): void {
    const seen = this.pending.get(key);
    if (seen) {
      seen.repeats++;
      seen.fields = fields;
      return;
    }
    this.log[level](fields, msg);
    const timer = setTimeout(() => this.roll(key), this.windowMs);
    timer.unref();
    this.pending.set(key, { level, msg, fields, repeats: 0, timer });
  }

  /** Writes the pending summaries now and forgets every key (shutdown). */
  flush(): void {
    for (const [key, entry] of this.pending) {
      clearTimeout(entry.timer);
      this.summarise(entry);
      this.pending.delete(key);
    }
  }

  private roll(key: string): void {
    const entry = this.pending.get(key);
    if (!entry) return;
    if (entry.repeats === 0) {
      this.pending.delete(key);
      return;
    }
    this.summarise(entry);
    entry.repeats = 0;
    entry.timer = setTimeout(() => this.roll(key), this.windowMs);
    entry.timer.unref();
  }

  private summarise(entry: Pending): void {
    if (entry.repeats === 0) return;
    this.log[entry.level]({ ...entry.fields, repeats: entry.repeats, windowMs: this.windowMs }, `${entry.msg} (repeated)`);
  }
}

/**
 * An error as a log field without its stack (log it under a key other than `err`, which pino
 * serialises with the stack): for expected failures (a dependency that is down) the stack says
 * nothing that the message and code do not.
 */
export function briefError(err: unknown): { type: string; message: string; code?: string } {
  if (!(err instanceof Error)) return { type: typeof err, message: String(err) };
  const code = (err as { code?: unknown }).code;
  let message = firstLine(err.message);
  if (err.cause instanceof Error && !message.includes(err.cause.message)) message += `: ${firstLine(err.cause.message)}`;
  // Only string codes (errno, SQLSTATE); ConnectError's numeric code is in its message already.
  return { type: err.name, message, ...(typeof code === "string" ? { code } : {}) };
}

/** The first line of a message (knex prefixes stack traces with a message line). */
export function firstLine(text: string): string {
  const end = text.indexOf("\n");
  return end === -1 ? text : text.slice(0, end);
}
