import { test } from "vitest";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { TimestampSchema } from "@bufbuild/protobuf/wkt";
import { DbTime, parseTimestamptz } from "@promptcraft/db";
import { InvalidArgumentError } from "./errors.js";
import { dbTimeFromTimestamp, timestampFromDb } from "./time.js";

test("a database time leaves as a Timestamp with its microseconds and comes back unchanged", () => {
  const stored = parseTimestamptz("2026-11-25 14:24:47.123456+00") as Date;
  const ts = timestampFromDb(stored);
  assert.equal(ts.seconds, BigInt(Date.UTC(2026, 10, 25, 14, 24, 47) / 1000));
  assert.equal(ts.nanos, 123_456_000);
  const back = dbTimeFromTimestamp(ts, "as_of_time");
  assert.equal(back.toISOString(), "2026-11-25T14:24:47.123456Z");

  assert.equal(timestampFromDb(new Date(Date.UTC(2026, 0, 1, 0, 0, 0, 5))).nanos, 5_000_000, "a plain Date: milliseconds");
  const before1970 = timestampFromDb(new DbTime(-1, 250));
  assert.deepEqual([before1970.seconds, before1970.nanos], [-1n, 999_250_000]);
  assert.equal(dbTimeFromTimestamp(before1970, "t").toISOString(), "1969-12-31T23:59:59.999250Z");
});

test("nanoseconds below the microsecond are dropped; out-of-range timestamps are INVALID_ARGUMENT on the field", () => {
  assert.equal(dbTimeFromTimestamp(create(TimestampSchema, { seconds: 0n, nanos: 1_999 }), "t").toISOString(), "1970-01-01T00:00:00.000001Z");
  for (const bad of [{ seconds: 253_402_300_800n }, { seconds: -62_135_596_801n }, { seconds: 0n, nanos: -1 }, { seconds: 0n, nanos: 1_000_000_000 }]) {
    assert.throws(
      () => dbTimeFromTimestamp(create(TimestampSchema, bad), "as_of_time"),
      (e: unknown) => e instanceof InvalidArgumentError && e.violations[0]?.field === "as_of_time",
    );
  }
});
