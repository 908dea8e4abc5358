import { canonicalJson, type VersionFields } from "@promptcraft/db";
import { diffLines, hunksOf, splitLines, unifiedText, type Hunk } from "./line-diff.js";

/**
 * What changed between two versions: every changed field (top-level fields as a whole, except
 * `content` and `metadata`, which are compared down to the changed key or list index), and a line
 * diff of every text (string) value that changed.
 */

export type ChangeKind = "added" | "removed" | "modified";

/** One changed field: its path, how it changed, and the values (JSON) on each side. */
export interface FieldChange {
  path: string;
  kind: ChangeKind;
  base?: unknown;
  target?: unknown;
}

/** A line diff of one changed text. */
export interface TextDiff {
  path: string;
  hunks: Hunk[];
  unified: string;
}

/** Fields compared as a whole. */
const WHOLE_FIELDS = ["title", "description", "status", "visibility", "tags"] as const;
/** Whole fields whose string values are enum names, not texts to line-diff. */
const ENUM_FIELDS = new Set(["status", "visibility"]);
/** JSON fields compared key by key. */
const JSON_FIELDS = ["content", "metadata"] as const;

const SIMPLE_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** `parent.key`, or `parent["odd key"]` for keys that are not simple names. */
function childPath(parent: string, key: string): string {
  return SIMPLE_KEY.test(key) ? `${parent}.${key}` : `${parent}[${JSON.stringify(key)}]`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function compare(path: string, base: unknown, target: unknown, out: FieldChange[]): void {
  if (canonicalJson(base) === canonicalJson(target)) return;
  if (isObject(base) && isObject(target)) {
    for (const key of new Set([...Object.keys(base), ...Object.keys(target)])) {
      const p = childPath(path, key);
      if (!(key in target)) out.push({ path: p, kind: "removed", base: base[key] });
      else if (!(key in base)) out.push({ path: p, kind: "added", target: target[key] });
      else compare(p, base[key], target[key], out);
    }
    return;
  }
  if (Array.isArray(base) && Array.isArray(target)) {
    for (let i = 0; i < Math.max(base.length, target.length); i++) {
      const p = `${path}[${i}]`;
      if (i >= target.length) out.push({ path: p, kind: "removed", base: base[i] });
      else if (i >= base.length) out.push({ path: p, kind: "added", target: target[i] });
      else compare(p, base[i], target[i], out);
    }
    return;
  }
  out.push({ path, kind: "modified", base, target });
}

/** The changed fields between two versions, ordered by path. */
export function fieldChanges(base: VersionFields, target: VersionFields): FieldChange[] {
  const out: FieldChange[] = [];
  for (const f of WHOLE_FIELDS) {
    if (canonicalJson(base[f]) !== canonicalJson(target[f])) out.push({ path: f, kind: "modified", base: base[f], target: target[f] });
  }
  for (const f of JSON_FIELDS) compare(f, base[f], target[f], out);
  return out.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
}

/** Line diffs of the changes whose values are texts on both sides (not enums), in the order of `changes`. */
export function textDiffs(changes: readonly FieldChange[], names: { base: string; target: string }, contextLines: number): TextDiff[] {
  return changes.flatMap((c) => {
    if (c.kind !== "modified" || ENUM_FIELDS.has(c.path) || typeof c.base !== "string" || typeof c.target !== "string") return [];
    const hunks = hunksOf(diffLines(splitLines(c.base), splitLines(c.target)), contextLines);
    return [{ path: c.path, hunks, unified: unifiedText(hunks, names.base, names.target) }];
  });
}
