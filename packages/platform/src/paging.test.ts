import { test } from "node:test";
import assert from "node:assert/strict";
import { decodePageCursor, encodePageCursor, pageSizeOf } from "./paging.js";

test("page cursors round-trip, are bound to the parameters and keys, and expire", () => {
  const params = { q: ["a"], d: false };
  const token = encodePageCursor({ key: "k1", id: "x" }, params, 1_000);
  assert.deepEqual(decodePageCursor(token, params, ["key", "id"], 2_000), { key: "k1", id: "x" });
  assert.equal(decodePageCursor("", params, ["id"]), undefined);
  assert.throws(() => decodePageCursor(token, { ...params, d: true }, ["key", "id"], 2_000), /page token/);
  assert.throws(() => decodePageCursor(token, params, ["version"], 2_000), /page token/);
  assert.throws(() => decodePageCursor(token, params, ["id"], 1_000 + 24 * 3600 * 1000 + 1), /page token/);
  assert.throws(() => decodePageCursor("not json", params, ["id"]), /page token/);
  assert.equal(pageSizeOf(0), 50);
  assert.equal(pageSizeOf(0, 100), 100);
  assert.equal(pageSizeOf(5000), 1000);
});
