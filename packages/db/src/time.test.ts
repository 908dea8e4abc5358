import { test } from "vitest";
import assert from "node:assert/strict";
import { DbTime, dbTypes, epochMicros, parseTimestamptz, sqlTime } from "./time.js";

test("timestamptz text is read to the microsecond, whatever the session's offset", () => {
  const t = parseTimestamptz("2026-11-25 14:24:47.123456+00");
  assert.ok(t instanceof DbTime);
  assert.equal(t.getTime(), Date.UTC(2026, 10, 25, 14, 24, 47, 123));
  assert.equal(t.microsOfMillisecond, 456);
  assert.equal(t.toISOString(), "2026-11-25T14:24:47.123456Z");
  assert.equal(JSON.stringify({ t }), '{"t":"2026-11-25T14:24:47.123456Z"}', "JSON (event payloads) keeps the microseconds");
  assert.equal(sqlTime(t), "2026-11-25T14:24:47.123456Z");

  assert.equal((parseTimestamptz("2026-11-25 16:24:47.1+02") as Date).toISOString(), "2026-11-25T14:24:47.100000Z");
  assert.equal((parseTimestamptz("2026-11-25 09:54:47.000007-04:30") as Date).toISOString(), "2026-11-25T14:24:47.000007Z");
  assert.equal((parseTimestamptz("2026-11-25 14:24:47+00") as Date).toISOString(), "2026-11-25T14:24:47.000000Z");
  assert.equal(parseTimestamptz("infinity"), Infinity);
  assert.equal(parseTimestamptz("-infinity"), -Infinity);
});

test("only timestamptz text gets the precise parser; every other type keeps the driver's", () => {
  assert.equal(dbTypes.getTypeParser(1184, "text"), parseTimestamptz);
  assert.equal(dbTypes.getTypeParser(1184), parseTimestamptz);
  assert.notEqual(dbTypes.getTypeParser(1114, "text"), parseTimestamptz);
  assert.equal(dbTypes.getTypeParser(20, "text")("9007199254740993"), "9007199254740993", "int8 stays text");
});

test("times compare to the microsecond", () => {
  const a = parseTimestamptz("2026-11-25 14:24:47.123456+00") as Date;
  const b = parseTimestamptz("2026-11-25 14:24:47.123457+00") as Date;
  assert.equal(a.getTime(), b.getTime(), "a Date alone cannot tell them apart");
  assert.equal(epochMicros(b) - epochMicros(a), 1);
  assert.equal(epochMicros(new Date(5)), 5000);
});

test("a plain Date goes to SQL with its milliseconds", () => {
  assert.equal(sqlTime(new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 6))), "2026-01-02T03:04:05.006Z");
});
