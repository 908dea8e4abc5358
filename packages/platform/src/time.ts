import { create } from "@bufbuild/protobuf";
import { type Timestamp, TimestampSchema } from "@bufbuild/protobuf/wkt";
import { DbTime } from "@promptcraft/db";
import { InvalidArgumentError } from "./errors.js";

// Timestamps cross the API with PostgreSQL's precision (microseconds) in both directions, so a time a
// client received can be sent back and select exactly what it named (see DbTime in @promptcraft/db).

/** A time read from the database as a protobuf Timestamp, microseconds included when the row had them. */
export function timestampFromDb(date: Date): Timestamp {
  const ms = date.getTime();
  const micros = date instanceof DbTime ? date.microsOfMillisecond : 0;
  const seconds = Math.floor(ms / 1000);
  return create(TimestampSchema, { seconds: BigInt(seconds), nanos: (ms - seconds * 1000) * 1_000_000 + micros * 1000 });
}

// Timestamp's documented range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
const MIN_SECONDS = -62_135_596_800n;
const MAX_SECONDS = 253_402_300_799n;

/**
 * A request's Timestamp as a DbTime, to the microsecond (PostgreSQL keeps no finer; nanoseconds below it
 * are dropped, which selects the same rows). Out of the Timestamp range is INVALID_ARGUMENT on `field`.
 */
export function dbTimeFromTimestamp(timestamp: Timestamp, field: string): DbTime {
  if (timestamp.seconds < MIN_SECONDS || timestamp.seconds > MAX_SECONDS || timestamp.nanos < 0 || timestamp.nanos > 999_999_999) {
    throw new InvalidArgumentError({ field, description: "must be a valid timestamp between years 1 and 9999" });
  }
  const micros = Math.floor(timestamp.nanos / 1000);
  return new DbTime(Number(timestamp.seconds) * 1000 + Math.floor(micros / 1000), micros % 1000);
}
