import { test } from "vitest";
import assert from "node:assert/strict";
import { CURSOR_TEXT, CURSOR_TIMESTAMP, decodePageCursor, encodePageCursor, pageOf, pageSizeOf } from "./paging.js";

test("page cursors round-trip, are bound to the parameters and keys, and expire", () => {
  const params = { q: ["a"], d: false };
  const shape = { key: CURSOR_TEXT, id: /^x$/ };
  const token = encodePageCursor({ key: "k1", id: "x" }, params, 1_000);
  assert.deepEqual(decodePageCursor(token, params, shape, 2_000), { key: "k1", id: "x" });
  assert.equal(decodePageCursor("", params, shape), undefined);
  assert.throws(() => decodePageCursor(token, { ...params, d: true }, shape, 2_000), /page token/);
  assert.throws(() => decodePageCursor(token, params, { version: CURSOR_TEXT }, 2_000), /page token/);
  assert.throws(() => decodePageCursor(token, params, { key: CURSOR_TIMESTAMP }, 2_000), /page token/, "a key of the wrong form");
  assert.throws(() => decodePageCursor(token, params, shape, 1_000 + 24 * 3600 * 1000 + 1), /page token/);
  assert.throws(() => decodePageCursor("not json", params, shape), /page token/);
  assert.equal(CURSOR_TIMESTAMP.test("2026-11-25T12:00:00.123456Z"), true);
  assert.equal(CURSOR_TIMESTAMP.test("0001-01-01T00:00:00.000000Z"), true);
  for (const castless of ["2026-02-31T12:00:00.123456Z", "0000-01-01T00:00:00.000000Z", "2026-11-25T24:00:00.000000Z", "2026-13-01T00:00:00.000000Z", "2026-11-25 12:00:00.123456+00", "2026-11-25T12:00:00.123Z"]) {
    assert.equal(CURSOR_TIMESTAMP.test(castless), false, castless);
  }
  assert.deepEqual(decodePageCursor(token, params, ["key"], 2_000), { key: "k1", id: "x" }, "keys only: any strings");
  assert.equal(pageSizeOf(0), 50);
  assert.equal(pageSizeOf(0, 100), 100);
  assert.equal(pageSizeOf(5000), 1000);
});

test("pageOf: rows read with one more than the limit give the page and, only when there was more, the next token", () => {
  const params = { list: "x" };
  const more = pageOf([{ id: "a" }, { id: "b" }, { id: "c" }], 2, params, (last) => ({ id: last.id }));
  assert.deepEqual(more.page, [{ id: "a" }, { id: "b" }]);
  assert.deepEqual(decodePageCursor(more.nextPageToken, params, ["id"]), { id: "b" }, "the cursor is the page's last row");
  assert.deepEqual(pageOf([{ id: "a" }, { id: "b" }], 2, params, (last) => ({ id: last.id })), { page: [{ id: "a" }, { id: "b" }], nextPageToken: "" });
  assert.deepEqual(pageOf([], 2, params, () => ({})), { page: [], nextPageToken: "" });
});
