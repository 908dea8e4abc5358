import { test } from "vitest";
import assert from "node:assert/strict";
import { diffLines, hunksOf, splitLines, unifiedText, type DiffLine } from "./line-diff.js";

/** Applies a script to its base: the result must be the target (the script is correct). */
function apply(script: DiffLine[]): { base: string[]; target: string[] } {
  return {
    base: script.filter((l) => l.kind !== "added").map((l) => l.text),
    target: script.filter((l) => l.kind !== "removed").map((l) => l.text),
  };
}

const changes = (script: DiffLine[]) => script.filter((l) => l.kind !== "context").length;

test("splitLines: terminators, a final newline, the empty text", () => {
  assert.deepEqual(splitLines(""), []);
  assert.deepEqual(splitLines("a"), ["a"]);
  assert.deepEqual(splitLines("a\nb\n"), ["a", "b"]);
  assert.deepEqual(splitLines("a\r\nb\rc\n\n"), ["a", "b", "c", ""]);
});

test("diffLines finds a shortest script that reproduces both sides", () => {
  const cases: [string, string][] = [
    ["", ""],
    ["a", ""],
    ["", "a"],
    ["a b c", "a b c"],
    ["a b c a b b a", "c b a b a c"],
    ["x a y", "a"],
    ["a b c d e", "a x c y e"],
    ["1 2 3 4 5 6 7 8", "0 1 2 4 5 7 8 9"],
  ];
  for (const [x, y] of cases) {
    const a = x === "" ? [] : x.split(" ");
    const b = y === "" ? [] : y.split(" ");
    const script = diffLines(a, b);
    assert.deepEqual(apply(script), { base: a, target: b }, `${x} -> ${y}`);
  }
  // Myers' paper example: edit distance 5.
  assert.equal(changes(diffLines("a b c a b b a".split(" "), "c b a b a c".split(" "))), 5);
  assert.equal(changes(diffLines("a b c d e".split(" "), "a x c y e".split(" "))), 4);
  assert.equal(changes(diffLines(["same"], ["same"])), 0);
});

test("diffLines agrees with a brute-force LCS on random texts, and falls back to replacement past the limit", () => {
  let seed = 7;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const lcs = (a: string[], b: string[]) => {
    const t = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
    for (let i = 1; i <= a.length; i++) for (let j = 1; j <= b.length; j++) t[i]![j] = a[i - 1] === b[j - 1] ? t[i - 1]![j - 1]! + 1 : Math.max(t[i - 1]![j]!, t[i]![j - 1]!);
    return t[a.length]![b.length]!;
  };
  for (let round = 0; round < 200; round++) {
    const a = Array.from({ length: Math.floor(rand() * 12) }, () => "abcd"[Math.floor(rand() * 4)]!);
    const b = Array.from({ length: Math.floor(rand() * 12) }, () => "abcd"[Math.floor(rand() * 4)]!);
    const script = diffLines(a, b);
    assert.deepEqual(apply(script), { base: a, target: b });
    assert.equal(changes(script), a.length + b.length - 2 * lcs(a, b), `${a.join("")} -> ${b.join("")}`);
  }
  const limited = diffLines(["a", "b", "c"], ["x", "b", "y"], 1);
  assert.deepEqual(apply(limited), { base: ["a", "b", "c"], target: ["x", "b", "y"] });
  assert.equal(changes(limited), 6);
});

test("hunksOf: context around changes, merged when close, GNU line numbers; unified text", () => {
  const base = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"];
  const target = ["1", "2", "three", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13"];
  const hunks = hunksOf(diffLines(base, target), 2);
  assert.equal(hunks.length, 2);
  assert.deepEqual(
    { ...hunks[0], lines: hunks[0]!.lines.map((l) => `${l.kind[0]}${l.text}`) },
    { baseStart: 1, baseLines: 5, targetStart: 1, targetLines: 5, lines: ["c1", "c2", "r3", "athree", "c4", "c5"] },
  );
  assert.deepEqual(
    { ...hunks[1], lines: hunks[1]!.lines.map((l) => `${l.kind[0]}${l.text}`) },
    { baseStart: 11, baseLines: 2, targetStart: 11, targetLines: 3, lines: ["c11", "c12", "a13"] },
  );
  assert.equal(hunksOf(diffLines(base, target), 10).length, 1, "close changes share a hunk");
  assert.deepEqual(hunksOf(diffLines(base, base), 3), []);
  const insertion = hunksOf(diffLines([], ["a"]), 3)[0]!;
  assert.deepEqual([insertion.baseStart, insertion.baseLines, insertion.targetStart, insertion.targetLines], [0, 0, 1, 1]);
  assert.equal(
    unifiedText(hunksOf(diffLines(["a", "b"], ["a", "c"]), 1), "v1", "v2"),
    "--- v1\n+++ v2\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n",
  );
});
