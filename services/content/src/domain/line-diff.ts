/**
 * Line diff of two texts (Myers' O(ND) algorithm, "An O(ND) Difference Algorithm and Its
 * Variations", 1986): the shortest edit script, grouped into unified-diff hunks with context.
 * Written here rather than taken from a package because the contract's shape (hunks of typed
 * lines plus the unified text) is all that is needed.
 */

export type LineKind = "context" | "added" | "removed";

/** One line of the edit script. */
export interface DiffLine {
  kind: LineKind;
  text: string;
}

/** A hunk: 1-based starts and line counts on each side, as in `@@ -baseStart,baseLines +targetStart,targetLines @@`. */
export interface Hunk {
  baseStart: number;
  baseLines: number;
  targetStart: number;
  targetLines: number;
  lines: DiffLine[];
}

/**
 * Beyond this many differing lines the shortest script is not searched for (its cost grows with
 * the square of the differences); the texts are then reported as wholly replaced, which is a
 * correct, if not minimal, diff.
 */
export const MAX_EDIT_DISTANCE = 4000;

/** The lines of a text; a final line terminator does not start another (empty) line. */
export function splitLines(text: string): string[] {
  if (text === "") return [];
  const lines = text.split(/\r\n|\n|\r/);
  if (lines[lines.length - 1] === "") lines.pop();
  return lines;
}

/** The shortest edit script turning `base` into `target`, in order, removals before additions at each place. */
export function diffLines(base: readonly string[], target: readonly string[], maxEdits = MAX_EDIT_DISTANCE): DiffLine[] {
  // Common prefix and suffix cost nothing to find and shrink the search.
  let prefix = 0;
  while (prefix < base.length && prefix < target.length && base[prefix] === target[prefix]) prefix++;
  let suffix = 0;
  while (suffix < base.length - prefix && suffix < target.length - prefix && base[base.length - 1 - suffix] === target[target.length - 1 - suffix]) suffix++;
  const a = base.slice(prefix, base.length - suffix);
  const b = target.slice(prefix, target.length - suffix);
  const context = (lines: readonly string[]) => lines.map((text): DiffLine => ({ kind: "context", text }));
  return [...context(base.slice(0, prefix)), ...middle(a, b, maxEdits), ...context(base.slice(base.length - suffix))];
}

function replaced(a: readonly string[], b: readonly string[]): DiffLine[] {
  return [...a.map((text): DiffLine => ({ kind: "removed", text })), ...b.map((text): DiffLine => ({ kind: "added", text }))];
}

function middle(a: readonly string[], b: readonly string[], maxEdits: number): DiffLine[] {
  const n = a.length;
  const m = b.length;
  if (n === 0 || m === 0) return replaced(a, b);
  const max = Math.min(n + m, maxEdits);
  const offset = n + m + 1;
  const v = new Int32Array(2 * offset + 1);
  // trace[d] holds v over k in [-(d+1), d+1] as it was before step d: enough to walk back.
  const trace: Int32Array[] = [];
  for (let d = 0; d <= max; d++) {
    trace.push(v.slice(offset - d - 1, offset + d + 2));
    for (let k = -d; k <= d; k += 2) {
      let x = k === -d || (k !== d && v[offset + k - 1]! < v[offset + k + 1]!) ? v[offset + k + 1]! : v[offset + k - 1]! + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) {
        x++;
        y++;
      }
      v[offset + k] = x;
      if (x >= n && y >= m) return backtrack(a, b, trace, d);
    }
  }
  return replaced(a, b);
}

function backtrack(a: readonly string[], b: readonly string[], trace: Int32Array[], depth: number): DiffLine[] {
  const out: DiffLine[] = [];
  let x = a.length;
  let y = b.length;
  for (let d = depth; d > 0; d--) {
    const before = trace[d]!;
    const at = (k: number) => before[k + d + 1]!;
    const k = x - y;
    const prevK = k === -d || (k !== d && at(k - 1) < at(k + 1)) ? k + 1 : k - 1;
    const prevX = at(prevK);
    const prevY = prevX - prevK;
    while (x > prevX && y > prevY) {
      y--;
      out.push({ kind: "context", text: a[--x]! });
    }
    if (x === prevX) out.push({ kind: "added", text: b[--y]! });
    else out.push({ kind: "removed", text: a[--x]! });
  }
  while (x > 0) out.push({ kind: "context", text: a[--x]! });
  out.reverse();
  // Within each run of changes, list removals before additions (the usual unified-diff order).
  const ordered: DiffLine[] = [];
  for (let i = 0; i < out.length; ) {
    if (out[i]!.kind === "context") {
      ordered.push(out[i++]!);
      continue;
    }
    let j = i;
    while (j < out.length && out[j]!.kind !== "context") j++;
    const run = out.slice(i, j);
    ordered.push(...run.filter((l) => l.kind === "removed"), ...run.filter((l) => l.kind === "added"));
    i = j;
  }
  return ordered;
}

/** Groups an edit script into hunks with up to `contextLines` unchanged lines around each change. */
export function hunksOf(script: readonly DiffLine[], contextLines: number): Hunk[] {
  const changed = script.flatMap((l, i) => (l.kind === "context" ? [] : [i]));
  if (changed.length === 0) return [];
  // Line numbers before each script index, on both sides.
  const baseBefore: number[] = [];
  const targetBefore: number[] = [];
  let bl = 0;
  let tl = 0;
  for (const l of script) {
    baseBefore.push(bl);
    targetBefore.push(tl);
    if (l.kind !== "added") bl++;
    if (l.kind !== "removed") tl++;
  }
  const hunks: Hunk[] = [];
  let start = Math.max(0, changed[0]! - contextLines);
  let end = Math.min(script.length, changed[0]! + 1 + contextLines);
  const close = () => {
    const lines = script.slice(start, end);
    const baseLines = lines.filter((l) => l.kind !== "added").length;
    const targetLines = lines.filter((l) => l.kind !== "removed").length;
    // As in GNU diff, an empty side starts at the line before the hunk.
    hunks.push({
      baseStart: baseBefore[start]! + (baseLines === 0 ? 0 : 1),
      baseLines,
      targetStart: targetBefore[start]! + (targetLines === 0 ? 0 : 1),
      targetLines,
      lines: [...lines],
    });
  };
  for (const i of changed.slice(1)) {
    if (i - contextLines <= end) {
      end = Math.min(script.length, i + 1 + contextLines);
    } else {
      close();
      start = i - contextLines;
      end = Math.min(script.length, i + 1 + contextLines);
    }
  }
  close();
  return hunks;
}

const PREFIX: Record<LineKind, string> = { context: " ", added: "+", removed: "-" };

/** The hunks in unified format under `--- baseName` / `+++ targetName` headers. */
export function unifiedText(hunks: readonly Hunk[], baseName: string, targetName: string): string {
  const out = [`--- ${baseName}`, `+++ ${targetName}`];
  for (const h of hunks) {
    out.push(`@@ -${h.baseStart},${h.baseLines} +${h.targetStart},${h.targetLines} @@`);
    for (const l of h.lines) out.push(`${PREFIX[l.kind]}${l.text}`);
  }
  return `${out.join("\n")}\n`;
}
