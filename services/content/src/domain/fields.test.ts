import { test } from "vitest";
import assert from "node:assert/strict";
import type { VersionFields } from "@promptcraft/db";
import { applyUpdateMask, checkVersionFields } from "./fields.js";

const current: VersionFields = {
  title: "T",
  description: "D",
  status: "draft",
  visibility: "private",
  content: { template: "a", variables: [{ name: "x" }], nested: { keep: 1, drop: 2 }, scalar: 5 },
  tags: ["t"],
  metadata: { m: 1 },
};
const empty: VersionFields = { title: "", description: "", status: "draft", visibility: "private", content: {}, tags: [], metadata: {} };

test("applyUpdateMask: named fields, `*`, and content/metadata sub-paths (set, remove, create parents)", () => {
  assert.deepEqual(applyUpdateMask(current, { ...empty, title: "New", description: "x" }, ["title"]), { ...current, title: "New" });
  assert.deepEqual(applyUpdateMask(current, empty, ["*"]), empty);
  const sub = applyUpdateMask(current, { ...empty, content: { template: "b", nested: { new: true } }, metadata: { a: { b: 1 } } }, [
    "content.template",
    "content.nested.drop",
    "content.nested.new",
    "metadata.a.b",
  ]);
  assert.deepEqual(sub.content, { template: "b", variables: [{ name: "x" }], nested: { keep: 1, new: true }, scalar: 5 });
  assert.deepEqual(sub.metadata, { m: 1, a: { b: 1 } });
  assert.deepEqual(current.content.nested, { keep: 1, drop: 2 }, "the current version is not modified");
  assert.deepEqual(applyUpdateMask(current, { ...empty, content: { x: 1 } }, ["content", "content.template"]).content, { x: 1 });
  assert.throws(() => applyUpdateMask(current, empty, ["title.x"]), /only content and metadata/);
  assert.throws(() => applyUpdateMask(current, empty, ["content.scalar.x"]), /scalar is not an object/);
});

test("checkVersionFields names every bad field", () => {
  assert.doesNotThrow(() => checkVersionFields(current, "entity"));
  assert.throws(
    () => checkVersionFields({ ...current, title: " ", tags: ["ok", " lead", "ctl\u0007"], content: { "k\u0000": "v", list: ["\u0000"] } }, "entity", { commit_message: "a\u0000" }),
    (err: { violations: { field: string }[] }) => {
      assert.deepEqual(err.violations.map((v) => v.field), ["entity.title", "entity.tags[1]", "entity.tags[2]", "entity.content", "entity.content.list[0]", "commit_message"]);
      return true;
    },
  );
});
