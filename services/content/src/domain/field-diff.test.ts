import { test } from "vitest";
import assert from "node:assert/strict";
import type { VersionFields } from "@promptcraft/db";
import { fieldChanges, textDiffs } from "./field-diff.js";

const base: VersionFields = {
  title: "T",
  description: "line 1\nline 2\n",
  status: "draft",
  visibility: "private",
  content: { template: "Hello {{name}}", variables: [{ name: "name" }, { name: "x" }], "odd key": 1, gone: true },
  tags: ["a"],
  metadata: {},
};

test("fieldChanges: whole fields, paths into content and metadata, ordered by path", () => {
  const target: VersionFields = {
    ...base,
    description: "line 1\nline two\n",
    status: "published",
    content: { template: "Hi {{name}}", variables: [{ name: "name", required: true }], "odd key": 2 },
    tags: ["a", "b"],
    metadata: { source: "import" },
  };
  const changes = fieldChanges(base, target);
  assert.deepEqual(
    changes.map((c) => `${c.kind} ${c.path}`),
    [
      "removed content.gone",
      "modified content.template",
      "added content.variables[0].required",
      "removed content.variables[1]",
      'modified content["odd key"]',
      "modified description",
      "added metadata.source",
      "modified status",
      "modified tags",
    ],
  );
  assert.deepEqual(changes.find((c) => c.path === "content.variables[1]")!.base, { name: "x" });
  assert.deepEqual(fieldChanges(base, { ...base }), []);
  assert.deepEqual(fieldChanges(base, { ...base, content: { ...base.content, template: 5 } }).map((c) => [c.path, c.base, c.target]), [["content.template", "Hello {{name}}", 5]]);
});

test("textDiffs: one line diff per changed text on both sides", () => {
  const target: VersionFields = { ...base, description: "line 1\nline two\n", content: { ...base.content, template: "Hi {{name}}" }, status: "published" };
  const diffs = textDiffs(fieldChanges(base, target), { base: "v1", target: "v2" }, 3);
  assert.deepEqual(diffs.map((d) => d.path), ["content.template", "description"], "status is not a text field");
  assert.equal(diffs[1]!.unified, "--- v1\n+++ v2\n@@ -1,2 +1,2 @@\n line 1\n-line 2\n+line two\n");
  assert.deepEqual(diffs[0]!.hunks[0]!.lines, [
    { kind: "removed", text: "Hello {{name}}" },
    { kind: "added", text: "Hi {{name}}" },
  ]);
});
