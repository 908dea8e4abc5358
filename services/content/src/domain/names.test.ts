import { describe, test } from "vitest";
import assert from "node:assert/strict";
import { firstFreeName, nameCandidate, NAME_PATTERN, slugOf } from "./names.js";

describe("names", () => {
  test("slugOf: lowercase ASCII words joined by single hyphens, accents dropped, 64 characters at most", () => {
    assert.equal(slugOf("Support Reply"), "support-reply");
    assert.equal(slugOf("  Café — Crème brûlée!! "), "cafe-creme-brulee");
    assert.equal(slugOf("GPT-4 / system_prompt v2"), "gpt-4-system-prompt-v2");
    assert.equal(slugOf("日本語"), "entity", "nothing usable: the fallback");
    assert.equal(slugOf("---"), "entity");
    const long = slugOf(`${"a".repeat(63)} b`);
    assert.equal(long, "a".repeat(63), "cut to 64, without a trailing hyphen");
    for (const title of ["Support Reply", "x", "Ärger", "a".repeat(300), "1. Step", "ß"]) assert.match(slugOf(title), NAME_PATTERN, title);
  });

  test("candidates: base, then base-2, base-3…, cut to fit 64 characters", () => {
    assert.deepEqual([1, 2, 10].map((n) => nameCandidate("support-reply", n)), ["support-reply", "support-reply-2", "support-reply-10"]);
    const base = `${"a".repeat(62)}-b`;
    assert.equal(nameCandidate(base, 2), `${"a".repeat(62)}-2`, "the cut leaves no hyphen before the suffix");
    assert.match(nameCandidate("b".repeat(64), 123), NAME_PATTERN);
    assert.equal(nameCandidate("b".repeat(64), 123).length, 64);
    assert.equal(firstFreeName("x", new Set(["x", "x-2", "x-4"])), "x-3");
    assert.equal(firstFreeName("x", new Set()), "x");
  });

  test("the pattern: 1-64 of [a-z0-9-], no hyphen at either end", () => {
    for (const ok of ["a", "0", "a-b", "a--b", "x".repeat(64)]) assert.match(ok, NAME_PATTERN);
    for (const bad of ["", "-a", "a-", "A", "a_b", "a.b", "a b", "x".repeat(65), "é"]) assert.doesNotMatch(bad, NAME_PATTERN);
  });
});
