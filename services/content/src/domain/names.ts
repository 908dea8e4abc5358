import { AlreadyExistsError, InvalidArgumentError } from "@promptcraft/platform";

/**
 * Entity names: the slug an application addresses an entity by (`GetEntity{name, label}`), and
 * which graph's composition syntax (`{{> name}}`) will refer to. The rule is deliberately simple:
 * 1-64 characters of lowercase ASCII letters, digits and hyphens, starting and ending with a letter
 * or digit. A name is unique per tenant among live entities (a deleted entity keeps its name but
 * releases it). The same pattern is checked by the contract and by the database.
 */

/** The name rule (also `entity_name_check` in the schema and the contract's pattern). */
export const NAME_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$/;
export const MAX_NAME_LENGTH = 64;
/** The name derived from a title with nothing usable in it. */
export const FALLBACK_NAME = "entity";

/** How an entity is addressed by a read: its UUID or its name. */
export type EntityRef = { id: string } | { name: string };

/**
 * The slug of a title: NFKD with combining marks dropped (`Café` → `cafe`), every run of other
 * characters than ASCII letters and digits becomes one `-`, lowercased, without leading or trailing
 * hyphens, cut to 64 characters; `entity` when nothing is left. The migration that named existing
 * entities applies the same rule in SQL.
 */
export function slugOf(title: string): string {
  const slug = title
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .replace(/[^A-Za-z0-9]+/g, "-")
    .toLowerCase()
    .replace(/^-+|-+$/g, "")
    .slice(0, MAX_NAME_LENGTH)
    .replace(/-+$/, "");
  return slug === "" ? FALLBACK_NAME : slug;
}

/** The n-th candidate for a derived name: `base` itself for n = 1, then `base-2`, `base-3`… (cut to fit 64). */
export function nameCandidate(base: string, n: number): string {
  if (n <= 1) return base;
  const suffix = `-${n}`;
  return `${base.slice(0, MAX_NAME_LENGTH - suffix.length).replace(/-+$/, "")}${suffix}`;
}

/** The first candidate of `base` that is not in `taken`. */
export function firstFreeName(base: string, taken: ReadonlySet<string>): string {
  for (let n = 1; ; n++) {
    const name = nameCandidate(base, n);
    if (!taken.has(name)) return name;
  }
}

/** INVALID_ARGUMENT naming `field` unless `name` follows the rule (the contract checks it too; this guards other callers). */
export function checkName(name: string, field: string): void {
  if (!NAME_PATTERN.test(name)) {
    throw new InvalidArgumentError({
      field,
      description: "a name has 1-64 lowercase ASCII letters, digits and hyphens, and starts and ends with a letter or digit",
    });
  }
}

/**
 * ALREADY_EXISTS for a name another live entity of the tenant holds; `field` names the request
 * field. `name` is empty for a derived name taken by a concurrent rename.
 */
export function nameTaken(name: string, field: string): AlreadyExistsError {
  return new AlreadyExistsError(name ? `another entity of the tenant is named ${name}` : "the derived name was taken meanwhile; try again", {
    metadata: { field, name, resource_type: "entity" },
  });
}

/** Whether a database error is the name being taken concurrently (unique index or history exclusion). */
export function isNameConflict(err: unknown): boolean {
  const e = err as { code?: string; constraint?: string } | undefined;
  return (e?.code === "23505" && e.constraint === "entity_name_key") || (e?.code === "23P01" && e.constraint === "entity_name_no_overlap");
}
