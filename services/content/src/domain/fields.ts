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

/** INVALID_ARGUMENT naming every bad field (under `prefix`, e.g. `entity`). */
export function checkVersionFields(fields: VersionFields, prefix: string, extraText: Record<string, string> = {}): void {
  const violations: FieldViolation[] = [];
  if (fields.title.trim() === "") violations.push({ field: `${prefix}.title`, description: "title must not be blank" });
  fields.tags.forEach((tag, i) => {
    if (!TAG_PATTERN.test(tag)) {
      violations.push({ field: `${prefix}.tags[${i}]`, description: "a tag has 1-64 characters, no control characters and no leading or trailing spaces" });
    }
  });
  const nul: string[] = [];
  nulPaths({ title: fields.title, description: fields.description, content: fields.content, metadata: fields.metadata }, prefix, nul);
  for (const [field, text] of Object.entries(extraText)) nulPaths(text, field, nul);
  for (const field of nul) violations.push({ field, description: "text may not contain the NUL character (U+0000)" });
  if (violations.length > 0) throw new InvalidArgumentError(violations);
}

/** The top-level fields an update mask may name; `*` names them all. */
export const UPDATABLE_FIELDS = ["title", "description", "status", "visibility", "content", "tags", "metadata"] as const;
export type UpdatableField = (typeof UPDATABLE_FIELDS)[number];

/**
 * The version fields after an update (AIP-134): the current values with every field named in
 * `paths` replaced by the request's value; `*` replaces every field. The contract's validation
 * admits only these top-level names (and `*`), so nothing else reaches here.
 */
export function applyUpdateMask(current: VersionFields, requested: VersionFields, paths: readonly string[]): VersionFields {
  const named = new Set(paths.flatMap((p) => (p === "*" ? [...UPDATABLE_FIELDS] : [p])));
  const next: VersionFields = { ...current };
  for (const field of UPDATABLE_FIELDS) {
    if (named.has(field)) (next as unknown as Record<string, unknown>)[field] = requested[field];
  }
  return next;
}
