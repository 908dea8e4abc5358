import { FailedPreconditionError, InvalidArgumentError } from "@promptcraft/platform";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";

/**
 * Template rendering (ContentService.RenderTemplate). A template entity's content is
 * `{"template": "…", "variables": [{"name", "description", "required", "default"}]}`; the text has
 * placeholders `{{name}}` or `{{ user.name }}` (a dotted path into an object variable).
 *
 * - `\{{` is a literal `{{`; `\\{{` is a literal backslash followed by a placeholder (a run of
 *   backslashes before `{{` stands for half as many, and an odd run escapes the braces). Backslashes
 *   anywhere else are plain text.
 * - `{{> ref}}` is a partial: another entity (by name or UUID) rendered in place, expanded into parts
 *   by domain/compose.ts before anything is substituted; `\{{> ref}}` is literal text like any `\{{`.
 * - A name is one or more segments of letters, digits, `_` and `-`, joined by single dots; spaces and
 *   tabs around it are allowed. An unclosed `{{` or a bad name fails the whole template
 *   (TEMPLATE_SYNTAX with the line and column of the `{{`), in lenient rendering too.
 * - A value is the request's variable, else the declared `default` (a null default is none). Strings
 *   are inserted as they are, other values as compact JSON. A path through anything but an object
 *   has no value. Lookups see own keys only (`{{constructor}}` is not Object's).
 * - Without a value: strict rendering fails (TEMPLATE_VARIABLES_MISSING); lenient rendering leaves the
 *   placeholder as written and reports it, unless its variable is declared `required` (then it fails
 *   in lenient rendering as well: that is what `required` adds).
 * - The rendered text is at most MAX_RENDERED_BYTES; its size is added up before it is built, each
 *   value serialized once, and the count stops at the limit (the error's `size_bytes` is where it
 *   stopped, a lower bound): a huge value repeated many times costs neither memory nor time.
 */

/** Largest rendered text, UTF-8 bytes: with the response's other fields it stays under the 4 MiB a gRPC client accepts by default. */
export const MAX_RENDERED_BYTES = 2 * 1024 * 1024;

/** How much of the missing names an error's metadata lists (it travels in a header; `missing_count` says how many there are). */
const MISSING_LIST_MAX_CHARS = 1024;

/**
 * A part of a parsed template: text to copy, a placeholder, or a partial `{{> ref}}` (another
 * entity rendered in place, domain/compose.ts); `source` is how it was written.
 */
export type TemplatePart =
  | { kind: "text"; text: string }
  | { kind: "placeholder"; name: string; path: string[]; source: string }
  | { kind: "partial"; ref: string; source: string };

const NAME = /^[\p{L}\p{N}_-]+(?:\.[\p{L}\p{N}_-]+)*$/u;
/** What a partial names: an entity name or an entity UUID. */
const PARTIAL_REF = /^(?:[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$/;
const BLANKS = /^[ \t]*|[ \t]*$/g;

/** 1-based line and column (in code points) of `offset` in `text`. */
function positionOf(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const lineStart = before.lastIndexOf("\n") + 1;
  return { line: before.split("\n").length, column: [...before.slice(lineStart)].length + 1 };
}

function syntaxError(text: string, offset: number, problem: string): FailedPreconditionError {
  const { line, column } = positionOf(text, offset);
  return new FailedPreconditionError(`template syntax error at line ${line}, column ${column}: ${problem}`, {
    reason: ErrorReason.TEMPLATE_SYNTAX,
    metadata: { line: String(line), column: String(column) },
  });
}

/** Number of backslashes directly before `offset`. */
function backslashesBefore(text: string, offset: number): number {
  let count = 0;
  while (offset - count > 0 && text[offset - count - 1] === "\\") count++;
  return count;
}

/** Splits a template into text and placeholders; FAILED_PRECONDITION (TEMPLATE_SYNTAX) when it is malformed. */
export function parseTemplate(template: string): TemplatePart[] {
  const parts: TemplatePart[] = [];
  let text = "";
  let from = 0;
  for (let open = template.indexOf("{{", from); open >= 0; open = template.indexOf("{{", from)) {
    const slashes = backslashesBefore(template, open);
    text += template.slice(from, open - slashes) + "\\".repeat(Math.floor(slashes / 2));
    if (slashes % 2 === 1) {
      text += "{{";
      from = open + 2;
      continue;
    }
    const close = template.indexOf("}}", open + 2);
    if (close < 0) throw syntaxError(template, open, 'unclosed "{{"');
    const name = template.slice(open + 2, close).replace(BLANKS, "");
    if (name.startsWith(">")) {
      const ref = name.slice(1).replace(BLANKS, "");
      if (!PARTIAL_REF.test(ref)) throw syntaxError(template, open, "a partial `{{> ref}}` names an entity by its name or UUID");
      if (text !== "") parts.push({ kind: "text", text });
      text = "";
      parts.push({ kind: "partial", ref, source: template.slice(open, close + 2) });
      from = close + 2;
      continue;
    }
    if (!NAME.test(name)) {
      const problem = name === "" ? "empty placeholder" : "a placeholder name is letters, digits, _ and - in segments joined by single dots";
      throw syntaxError(template, open, problem);
    }
    if (text !== "") parts.push({ kind: "text", text });
    text = "";
    parts.push({ kind: "placeholder", name, path: name.split("."), source: template.slice(open, close + 2) });
    from = close + 2;
  }
  text += template.slice(from);
  if (text !== "") parts.push({ kind: "text", text });
  return parts;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A template variable as `content.variables` declares it (entries without a string name are ignored). */
export interface Declaration {
  required: boolean;
  /** The `default`; undefined when there is none (a null default counts as none). */
  fallback: unknown;
}

export function declarationsOf(declared: unknown): Map<string, Declaration> {
  const byName = new Map<string, Declaration>();
  if (!Array.isArray(declared)) return byName;
  for (const entry of declared) {
    if (!isObject(entry) || typeof entry.name !== "string" || byName.has(entry.name)) continue;
    byName.set(entry.name, { required: entry.required === true, fallback: entry.default ?? undefined });
  }
  return byName;
}

/** The value at `path`, or undefined; own keys of objects only. */
function valueAt(root: unknown, path: string[]): unknown {
  let value = root;
  for (const key of path) {
    if (!isObject(value) || !Object.hasOwn(value, key)) return undefined;
    value = value[key];
  }
  return value;
}

export function notATemplate(why: string): FailedPreconditionError {
  return new FailedPreconditionError(why, { reason: ErrorReason.NOT_A_TEMPLATE });
}

function variablesMissing(names: string[], why: string): FailedPreconditionError {
  let listed = "";
  for (const name of names) {
    const next = listed === "" ? name : `${listed},${name}`;
    if (next.length > MISSING_LIST_MAX_CHARS) break;
    listed = next;
  }
  return new FailedPreconditionError(`${names.length} template variable(s) have no value (${why})`, {
    reason: ErrorReason.TEMPLATE_VARIABLES_MISSING,
    metadata: { missing_variables: listed, missing_count: String(names.length) },
  });
}

export interface RenderOptions {
  strict: boolean;
  /** Largest rendered text in UTF-8 bytes. */
  maxBytes: number;
}

export interface Rendered {
  text: string;
  /** Placeholders left in place, by first appearance, each once. */
  missingVariables: string[];
  /** Request variables no placeholder uses, by name. */
  unusedVariables: string[];
}

function tooLarge(bytes: number, maxBytes: number): InvalidArgumentError {
  return new InvalidArgumentError(
    { field: "variables", description: `the rendered text would be more than ${maxBytes} bytes (${bytes} when rendering stopped)` },
    { reason: ErrorReason.CONTENT_TOO_LARGE, metadata: { limit_bytes: String(maxBytes), size_bytes: String(bytes) } },
  );
}

/**
 * Renders a template entity's content with the request's variables. FAILED_PRECONDITION:
 * NOT_A_TEMPLATE (no `template` string), TEMPLATE_SYNTAX, TEMPLATE_VARIABLES_MISSING;
 * INVALID_ARGUMENT (CONTENT_TOO_LARGE, field `variables`) when the text would exceed
 * `maxBytes` — the request can always fix that, since every value it gives replaces a default.
 */
export function renderTemplate(content: Record<string, unknown>, variables: Record<string, unknown>, options: RenderOptions): Rendered {
  if (typeof content.template !== "string") throw notATemplate("the template's content has no `template` text");
  return renderParts(parseTemplate(content.template), declarationsOf(content.variables), variables, options);
}

/**
 * Renders parsed parts with the declarations in force (renderTemplate; compose.ts after replacing
 * every partial by its parts). A partial still present renders as written (it is never: compose.ts
 * expands or refuses each one).
 */
export function renderParts(parts: TemplatePart[], declared: Map<string, Declaration>, variables: Record<string, unknown>, options: RenderOptions): Rendered {
  const valueOf = (root: string): unknown => (Object.hasOwn(variables, root) ? variables[root] : declared.get(root)?.fallback);

  // First which placeholders have a value, by name in order of first appearance; nothing is serialized yet.
  const values = new Map<string, unknown>();
  const occurrences = new Map<string, number>();
  const usedRoots = new Set<string>();
  const requiredUnset: string[] = [];
  for (const part of parts) {
    if (part.kind !== "placeholder") continue;
    occurrences.set(part.name, (occurrences.get(part.name) ?? 0) + 1);
    if (values.has(part.name)) continue;
    const [root, ...rest] = part.path as [string, ...string[]];
    usedRoots.add(root);
    const rootValue = valueOf(root);
    if (rootValue === undefined && declared.get(root)?.required) requiredUnset.push(part.name);
    values.set(part.name, valueAt(rootValue, rest));
  }
  const missing = [...values].filter(([, value]) => value === undefined).map(([name]) => name);
  if (options.strict && missing.length > 0) throw variablesMissing(missing, "strict rendering");
  if (requiredUnset.length > 0) throw variablesMissing(requiredUnset, "required variables");

  // Then the size: text and placeholders left as written first, then each value serialized once and
  // counted as often as it appears, stopping at the limit — so a huge value repeated many times, or
  // many paths into one huge value, cost no more than the limit.
  let bytes = 0;
  for (const part of parts) {
    if (part.kind === "text") bytes += Buffer.byteLength(part.text);
    else if (part.kind === "partial" || values.get(part.name) === undefined) bytes += Buffer.byteLength(part.source);
  }
  if (bytes > options.maxBytes) throw tooLarge(bytes, options.maxBytes);
  const outputs = new Map<string, string>();
  for (const [name, value] of values) {
    if (value === undefined) continue;
    const output = typeof value === "string" ? value : JSON.stringify(value);
    bytes += Buffer.byteLength(output) * occurrences.get(name)!;
    if (bytes > options.maxBytes) throw tooLarge(bytes, options.maxBytes);
    outputs.set(name, output);
  }
  return {
    text: parts.map((part) => (part.kind === "text" ? part.text : part.kind === "partial" ? part.source : (outputs.get(part.name) ?? part.source))).join(""),
    missingVariables: missing,
    unusedVariables: Object.keys(variables).filter((name) => !usedRoots.has(name)).sort(),
  };
}
