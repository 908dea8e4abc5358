import { test } from "vitest";
import assert from "node:assert/strict";
import { principalFromName, principalName } from "./principal-name.js";

test("a principal's name: the user's UUID, else api_key:<uuid>, else empty; and back", () => {
  assert.equal(principalName("u", null), "u");
  assert.equal(principalName("u", "k"), "u");
  assert.equal(principalName(null, "k"), "api_key:k");
  assert.equal(principalName(undefined, undefined), "");
  assert.deepEqual(principalFromName("api_key:ABC"), { kind: "api_key", id: "abc" });
  assert.deepEqual(principalFromName("DEF"), { kind: "user", id: "def" });
});
