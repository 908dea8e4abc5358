import { test } from "vitest";
import assert from "node:assert/strict";
import { invertEnumMap } from "./enums.js";

test("enum maps invert one-to-one; a map that is not refuses to", () => {
  assert.deepEqual(invertEnumMap({ view: 1, edit: 2 }), { 1: "view", 2: "edit" });
  const inverse: Partial<Record<number, string>> = invertEnumMap({ view: 1 });
  assert.equal(inverse[0], undefined, "UNSPECIFIED maps to nothing");
  assert.throws(() => invertEnumMap({ deprecated: 3, archived: 3 }), /not one-to-one/);
});
