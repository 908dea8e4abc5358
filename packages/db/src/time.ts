import pg from "pg";

// PostgreSQL keeps timestamps to the microsecond, a JS Date to the millisecond. A version's validity
// starts at the microsecond its transaction wrote it, so a time handed to a client and sent back
// (GetEntity as_of = the update_time just returned) must survive the round trip exactly, or the read
// lands a few hundred microseconds early, on the version before. So timestamptz values are read as
// DbTime — a Date that also keeps the microseconds below its millisecond — and times go back into SQL
// as ISO text (see sqlTime), never as a Date, whose serialisation by `pg` stops at milliseconds.

const TIMESTAMPTZ_OID = 1184;
const FRACTION = /\d:\d\d\.(\d+)/;

/** A timestamptz read from PostgreSQL: a Date that also keeps the microseconds below its millisecond. */
export class DbTime extends Date {
  /** Microseconds past the Date's millisecond, 0–999. */
  readonly microsOfMillisecond: number;

  constructor(epochMs: number, microsOfMillisecond: number) {
    super(epochMs);
    this.microsOfMillisecond = microsOfMillisecond;
  }

  /** ISO 8601 in UTC with six fractional digits: exactly what PostgreSQL stored (JSON uses it too). */
  override toISOString(): string {
    return `${super.toISOString().slice(0, -1)}${String(this.microsOfMillisecond).padStart(3, "0")}Z`;
  }
}

const parseDate = pg.types.getTypeParser(TIMESTAMPTZ_OID, "text") as (text: string) => Date | number | null;

/** Parses timestamptz text output ("2026-11-25 14:24:47.123456+00") into a DbTime; ±infinity stay numbers. */
export function parseTimestamptz(text: string): Date | number | null {
  const date = parseDate(text);
  if (!(date instanceof Date) || Number.isNaN(date.getTime())) return date;
  const fraction = FRACTION.exec(text)?.[1] ?? "";
  return new DbTime(date.getTime(), Number(fraction.padEnd(6, "0").slice(3, 6)));
}

/**
 * Type parsers for `pg` clients and pools (their `types` option): the driver's defaults, with timestamptz
 * read as {@link DbTime}. createKnex installs them; a bare pg.Pool that must read the same values should too.
 */
export const dbTypes = {
  getTypeParser(oid: number, format?: string): (value: string) => unknown {
    if (format === "binary") return pg.types.getTypeParser(oid, "binary") as (value: string) => unknown;
    return oid === TIMESTAMPTZ_OID ? parseTimestamptz : (pg.types.getTypeParser(oid, "text") as (value: string) => unknown);
  },
};

/** Microseconds since the epoch: compares times as exactly as PostgreSQL does (a DbTime's microseconds count). */
export function epochMicros(date: Date): number {
  // Exact in a double: 2026 is about 1.8e15 µs, far below 2^53.
  return date.getTime() * 1000 + (date instanceof DbTime ? date.microsOfMillisecond : 0);
}

/**
 * A Date as text PostgreSQL reads exactly: for a DbTime all six fractional digits, for a plain Date its
 * milliseconds. Pass times into SQL this way whenever a microsecond can matter (validity, as-of reads).
 */
export function sqlTime(date: Date): string {
  return date.toISOString();
}
