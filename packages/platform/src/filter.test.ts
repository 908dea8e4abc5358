import { test } from "vitest";
import assert from "node:assert/strict";
import { ConnectError } from "@connectrpc/connect";
import { InvalidArgumentError } from "./errors.js";
import { filterMatches, filterSql, parseFilter, type FilterFields } from "./filter.js";

const FIELDS: FilterFields = {
  event_type: { type: "string", column: "event_type", prefix: true },
  aggregate_id: { type: "uuid", column: "aggregate_id" },
  actor_type: { type: "enum", column: "actor_type", values: { ACTOR_TYPE_USER: ["user"], ACTOR_TYPE_SYSTEM: ["service", "system"] } },
  service: { type: "string", column: "recorded_by", stored: (v) => `promptcraft_${v}` },
  occur_time: { type: "time", column: "occurred_at" },
};

function error(text: string): string {
  try {
    parseFilter(text, FIELDS);
  } catch (err) {
    assert.ok(err instanceof InvalidArgumentError && !(err instanceof ConnectError));
    assert.equal(err.violations[0]!.field, "filter");
    return err.violations[0]!.description;
  }
  assert.fail(`no error for ${text}`);
}

test("parses comparisons, AND/OR/NOT, parentheses, prefixes and enum names into SQL with bound values", () => {
  assert.equal(parseFilter("  ", FIELDS), undefined);
  const f = parseFilter('event_type = "content.label.*" AND (actor_type = ACTOR_TYPE_SYSTEM OR NOT service = "identity") occur_time >= "2026-12-01T00:00:00Z"', FIELDS)!;
  const { sql, bindings } = filterSql(f, FIELDS);
  assert.equal(
    sql,
    "((event_type like ? and (actor_type in (?, ?) or (not coalesce(recorded_by in (?), false)))) and occurred_at >= ?)",
  );
  assert.deepEqual(bindings.slice(0, 4), ["content.label.%", "service", "system", "promptcraft_identity"]);
  assert.deepEqual(bindings[4], new Date("2026-12-01T00:00:00Z"));
  // LIKE's own wildcards in a value are literal.
  assert.deepEqual(filterSql(parseFilter("event_type = 'a_b%*'", FIELDS)!, FIELDS).bindings, ["a\\_b\\%%"]);
});

test("matches records in memory the way the SQL selects them", () => {
  const f = parseFilter('event_type = "content.*" AND NOT actor_type = ACTOR_TYPE_USER', FIELDS)!;
  assert.equal(filterMatches(f, { event_type: "content.entity.created", actor_type: "system" }), true);
  assert.equal(filterMatches(f, { event_type: "content.entity.created", actor_type: "user" }), false);
  assert.equal(filterMatches(f, { event_type: "identity.user.created", actor_type: "system" }), false);
  const t = parseFilter('occur_time < "2026-12-01T00:00:00+01:00" OR aggregate_id != "6F1C2A64-1E55-4C1B-8F6B-2F0C6C1D2E3F"', FIELDS)!;
  assert.equal(filterMatches(t, { occur_time: new Date("2026-11-30T22:00:00Z"), aggregate_id: "6f1c2a64-1e55-4c1b-8f6b-2f0c6c1d2e3f" }), true);
  assert.equal(filterMatches(t, { occur_time: new Date("2026-11-30T23:30:00Z"), aggregate_id: "6f1c2a64-1e55-4c1b-8f6b-2f0c6c1d2e3f" }), false);
  assert.equal(filterMatches(t, { occur_time: new Date("2026-12-30T00:00:00Z"), aggregate_id: null }), true, "!= holds for an absent value");
});

test("every error names its position", () => {
  assert.match(error("nope = 1"), /^position 1: unknown field "nope"/);
  assert.match(error('event_type "x"'), /^position 12: expected an operator/);
  assert.match(error("event_type ="), /^position 13: expected a value/);
  assert.match(error('event_type = "x" OR'), /^position 20: expected a field name, found the end/);
  assert.match(error('(event_type = "x"'), /^position 18: expected '\)'/);
  assert.match(error('event_type = "x") '), /^position 17: unexpected "\)"/);
  assert.match(error('event_type = "unterminated'), /^position 14: unterminated string/);
  assert.match(error("event_type = 'a*b'"), /^position 14: \* is only allowed at the end/);
  assert.match(error('service = "c*"'), /^position 11: service does not take wildcards/);
  assert.match(error('aggregate_id = "12"'), /^position 16: aggregate_id must be a UUID/);
  assert.match(error("actor_type = USER"), /^position 14: actor_type must be one of ACTOR_TYPE_USER, ACTOR_TYPE_SYSTEM/);
  assert.match(error('actor_type = "ACTOR_TYPE_USER"'), /must be one of/);
  assert.match(error('occur_time = "2026-12-01T00:00:00Z"'), /^position 14: occur_time takes <, <=, > or >=/);
  assert.match(error('occur_time > "yesterday"'), /^position 14: occur_time needs an RFC 3339 time/);
  assert.match(error('event_type > "x"'), /^position 14: event_type takes = or !=/);
  assert.match(error("event_type = x ! y"), /^position 16: unexpected '!'/);
  assert.match(error("event_type = x; drop"), /^position 15: unexpected character ";"/);
});
