import type { VersionFields } from "@promptcraft/db";
import { InvalidArgumentError, type FieldViolation } from "@promptcraft/platform";

/**
 * Rules on the versioned fields beyond what the contract's validation already checks, so that
 * nothing the database would refuse reaches it (a refusal there would be INTERNAL, not the
 * caller's INVALID_ARGUMENT): titles are not blank, tags have no control characters or
 * surrounding spaces (entity_tags_valid), and no text holds U+0000 (PostgreSQL text and jsonb
 * cannot store it).
 */

/** Same rule as the `entity_tags_valid` SQL function: 1-64 characters, no controls, no surrounding spaces. */
const TAG_PATTERN = /^[^\s\p{Cc}]([^\p{Cc}]{0,62}[^\s\p{Cc}])?$/u;

function nulPaths(value: unknown, path: string, out: string[]): void {
  if (typeof value === "string") {
    if (value.includes("\u0000")) out.push(path);
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => nulPaths(v, `${path}[${i}]`, out));
  } else if (value !== null && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      if (k.includes("\u0000")) out.push(path);
      nulPaths(v, `${path}.${k}`, out);
    }
  }
}

function nulViolations(values: Record<string, unknown>): FieldViolation[] {
  const nul: string[] = [];
  for (const [field, value] of Object.entries(values)) nulPaths(value, field, nul);
  return nul.map((field) => ({ field, description: "text may not contain the NUL character (U+0000)" }));
}

/** INVALID_ARGUMENT naming every request field (by its path) whose text holds U+0000. */
export function checkText(values: Record<string, unknown>): void {
  const violations = nulViolations(values);
  if (violations.length > 0) throw new InvalidArgumentError(violations);
}

/** INVALID_ARGUMENT naming every bad field (under `prefix`, e.g. `entity`). */
export function checkVersionFields(fields: VersionFields, prefix: string, extraText: Record<string, string> = {}): void {
  const violations: FieldViolation[] = [];
  if (fields.title.trim() === "") violations.push({ field: `${prefix}.title`, description: "title must not be blank" });
  fields.tags.forEach((tag, i) => {
    if (!TAG_PATTERN.test(tag)) {
      violations.push({ field: `${prefix}.tags[${i}]`, description: "a tag has 1-64 characters, no control characters and no leading or trailing spaces" });
    }
  });
  violations.push(
    ...nulViolations({ [prefix]: { title: fields.title, description: fields.description, content: fields.content, metadata: fields.metadata }, ...extraText }),
  );
  if (violations.length > 0) throw new InvalidArgumentError(violations);
}

/** The top-level fields an update mask may name; `*` names them all. */
export const UPDATABLE_FIELDS = ["title", "description", "status", "visibility", "content", "tags", "metadata"] as const;
export type UpdatableField = (typeof UPDATABLE_FIELDS)[number];

const JSON_FIELDS = new Set(["content", "metadata"]);

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function maskError(path: string, description: string): InvalidArgumentError {
  return new InvalidArgumentError({ field: "update_mask", description: `${path}: ${description}` });
}

/**
 * Replaces the key at `keys` of `target` with the one of `source` (AIP-134 sub-path): set when the
 * request has it, removed when it does not. Parent objects are created as needed; a parent that
 * exists but is not an object cannot hold a key (INVALID_ARGUMENT on `update_mask`).
 */
function replaceKey(target: Record<string, unknown>, source: unknown, keys: string[], path: string): void {
  let into = target;
  let from: unknown = source;
  for (const key of keys.slice(0, -1)) {
    from = isObject(from) ? from[key] : undefined;
    const next = into[key];
    if (next === undefined) into[key] = {};
    else if (!isObject(next)) throw maskError(path, `${key} is not an object in the current version`);
    into = into[key] as Record<string, unknown>;
  }
  const last = keys[keys.length - 1]!;
  if (isObject(from) && last in from) into[last] = from[last];
  else delete into[last];
}

/**
 * The version fields after an update (AIP-134): the current values with every field named in
 * `paths` replaced by the request's value; `*` replaces every field. `content.<key>…` and
 * `metadata.<key>…` replace a single key (removing it when the request lacks it). The contract's
 * validation admits these names and sub-paths of them; a sub-path of any other field is refused.
 */
export function applyUpdateMask(current: VersionFields, requested: VersionFields, paths: readonly string[]): VersionFields {
  const named = new Set(paths.flatMap((p) => (p === "*" ? [...UPDATABLE_FIELDS] : [p])));
  const next: VersionFields = { ...current, content: structuredClone(current.content), metadata: structuredClone(current.metadata) };
  for (const field of UPDATABLE_FIELDS) {
    if (named.has(field)) (next as unknown as Record<string, unknown>)[field] = requested[field];
  }
  for (const path of named) {
    const [field, ...keys] = path.split(".");
    if (keys.length === 0) continue;
    if (!JSON_FIELDS.has(field!)) throw maskError(path, "only content and metadata have sub-paths");
    if (named.has(field!)) continue;
    if (keys.some((k) => k === "")) throw maskError(path, "empty key in the path");
    replaceKey(next[field as "content" | "metadata"], requested[field as "content" | "metadata"], keys, path);
  }
  return next;
}
