import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from "@promptcraft/platform";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import type { Knex } from "@promptcraft/db";
import type { VersionSelector } from "../store/entities.js";
import type { Caller } from "./access.js";
import { getEntity, type EntityRow } from "./entities.js";
import type { EntityRef } from "./names.js";

/**
 * Template rendering (ContentService.RenderTemplate). A template entity's content is
 * `{"template": "…", "variables": [{"name", "description", "required", "default"}]}`; the text has
 * placeholders `{{name}}` or `{{ user.name }}` (a dotted path into an object variable).
 *
 * - `\{{` is a literal `{{`; `\\{{` is a literal backslash followed by a placeholder (a run of
 *   backslashes before `{{` stands for half as many, and an odd run escapes the braces). Backslashes
 *   anywhere else are plain text.
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

/** A part of a parsed template: text to copy, a placeholder, or a partial (`source` is how it was written). */
export type TemplatePart =
  | { kind: "text"; text: string }
  | { kind: "placeholder"; name: string; path: string[]; source: string }
  | { kind: "partial"; ref: string; source: string };

/** A partial's reference: an entity name (names.ts's rule) or an entity UUID. */
const PARTIAL_REF = /^(?:[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$/;

const NAME = /^[\p{L}\p{N}_-]+(?:\.[\p{L}\p{N}_-]+)*$/u;
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
      if (!PARTIAL_REF.test(ref)) throw syntaxError(template, open, "a partial is {{> name}} or {{> entity-uuid}}");
      if (text !== "") parts.push({ kind: "text", text });
      text = "";
      parts.push({ kind: "partial", ref: ref.toLowerCase(), source: template.slice(open, close + 2) });
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
interface Declaration {
  required: boolean;
  /** The `default`; undefined when there is none (a null default counts as none). */
  fallback: unknown;
}

function declarationsOf(declared: unknown): Map<string, Declaration> {
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

function notATemplate(why: string): FailedPreconditionError {
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
 * Renders a template entity's content with the request's variables; `included` holds the text of
 * each partial, by ref, already rendered. FAILED_PRECONDITION: NOT_A_TEMPLATE (no `template`
 * string), TEMPLATE_SYNTAX, TEMPLATE_VARIABLES_MISSING, PARTIAL_UNRESOLVED (a partial with no text in
 * `included`); INVALID_ARGUMENT (CONTENT_TOO_LARGE, field `variables`) when the text would exceed
 * `maxBytes` — the request can always fix that, since every value it gives replaces a default.
 */
export function renderTemplate(
  content: Record<string, unknown>,
  variables: Record<string, unknown>,
  options: RenderOptions,
  included: ReadonlyMap<string, string> = new Map(),
): Rendered {
  if (typeof content.template !== "string") throw notATemplate("the template's content has no `template` text");
  const { text, missingVariables, unusedVariables } = renderParts(parseTemplate(content.template), declarationsOf(content.variables), variables, options, included);
  return { text, missingVariables, unusedVariables };
}

function renderParts(
  parts: TemplatePart[],
  declared: Map<string, Declaration>,
  variables: Record<string, unknown>,
  options: RenderOptions,
  included: ReadonlyMap<string, string>,
): Rendered & { usedVariables: Set<string> } {
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

  // Then the size: text, partials and placeholders left as written first, then each value serialized
  // once and counted as often as it appears, stopping at the limit — so a huge value repeated many
  // times, or many paths into one huge value, cost no more than the limit.
  let bytes = 0;
  for (const part of parts) {
    if (part.kind === "text") bytes += Buffer.byteLength(part.text);
    else if (part.kind === "partial") bytes += Buffer.byteLength(includedText(included, part.ref));
    else if (values.get(part.name) === undefined) bytes += Buffer.byteLength(part.source);
    if (bytes > options.maxBytes) throw tooLarge(bytes, options.maxBytes);
  }
  const outputs = new Map<string, string>();
  for (const [name, value] of values) {
    if (value === undefined) continue;
    const output = typeof value === "string" ? value : JSON.stringify(value);
    bytes += Buffer.byteLength(output) * occurrences.get(name)!;
    if (bytes > options.maxBytes) throw tooLarge(bytes, options.maxBytes);
    outputs.set(name, output);
  }
  const textOf = (part: TemplatePart): string => {
    if (part.kind === "text") return part.text;
    if (part.kind === "partial") return includedText(included, part.ref);
    return outputs.get(part.name) ?? part.source;
  };
  return {
    text: parts.map(textOf).join(""),
    missingVariables: missing,
    unusedVariables: Object.keys(variables).filter((name) => !usedRoots.has(name)).sort(),
    usedVariables: usedRoots,
  };
}

function includedText(included: ReadonlyMap<string, string>, ref: string): string {
  const text = included.get(ref);
  if (text === undefined) throw partialUnresolved(ref, "", "the partial was not resolved");
  return text;
}

/** How deep partials may nest (the graph's traversal limit). */
export const MAX_PARTIAL_DEPTH = 10;

/**
 * A dependency edge of a template's closure as the graph service resolved it: the including entity
 * (`dependentId`, the relationship's source), the included one, and the version its pin resolves to
 * — or why it does not resolve (`problem`).
 */
export interface ResolvedDependency {
  dependentId: string;
  entityId: string;
  version: number | undefined;
  problem: string | undefined;
}

/** The dependency closure of a template (graph's ResolveDependencies, with the caller's credentials). */
export type ResolveDependencies = (templateId: string) => Promise<readonly ResolvedDependency[]>;

/** One (entity, version) a rendered text was made of. */
export interface ReceiptEntry {
  entityId: string;
  name: string;
  entityType: EntityRow["entity_type"];
  version: number;
  contentHash: string;
  /** The template whose partial included it; undefined for the template rendered. */
  includedBy: string | undefined;
}

export interface ComposedRender extends Rendered {
  receipt: ReceiptEntry[];
}

function partialUnresolved(ref: string, templateId: string, problem: string): FailedPreconditionError {
  return new FailedPreconditionError(`partial {{> ${ref}}} cannot be included: ${problem}`, {
    reason: ErrorReason.PARTIAL_UNRESOLVED,
    metadata: { partial: ref, template_entity_id: templateId, problem },
  });
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * One composed render: the dependency closure is asked for once (only when a partial appears), each
 * (entity, version) is read once with the caller's access, and an included template renders once —
 * the same variables give the same text wherever it is included.
 */
class Composition {
  private closure: Promise<readonly ResolvedDependency[]> | undefined;
  private readonly rows = new Map<string, Promise<EntityRow | undefined>>();
  private readonly texts = new Map<string, Promise<string>>();
  readonly receipt: ReceiptEntry[] = [];
  private readonly inReceipt = new Set<string>();
  readonly missing = new Set<string>();
  readonly used = new Set<string>();

  constructor(
    private readonly db: Knex,
    private readonly caller: Caller,
    private readonly root: EntityRow,
    private readonly resolve: ResolveDependencies | undefined,
    private readonly variables: Record<string, unknown>,
    private readonly options: RenderOptions,
  ) {}

  /**
   * The text of `row` — a template's `content.template`, or an included context's `content.text` —
   * rendered with the request's variables and its own declared defaults, its partials included
   * (depth = how many partials deep it is).
   */
  async render(row: EntityRow, includedBy: string | undefined, depth: number): Promise<string> {
    this.note(row, includedBy);
    const content = row.content ?? {};
    const text = row.entity_type === "template" ? content.template : content.text;
    if (typeof text !== "string") {
      if (includedBy === undefined) throw notATemplate("the template's content has no `template` text");
      const field = row.entity_type === "template" ? "template" : "text";
      throw partialUnresolved(row.name, includedBy, `the included ${row.entity_type} has no \`${field}\` in its content`);
    }
    const parts = parseTemplate(text);
    const refs = [...new Set(parts.flatMap((part) => (part.kind === "partial" ? [part.ref] : [])))];
    const included = new Map<string, string>();
    for (const ref of refs) {
      if (depth >= MAX_PARTIAL_DEPTH) throw partialUnresolved(ref, row.id, `partials nest deeper than ${MAX_PARTIAL_DEPTH}`);
      included.set(ref, await this.include(row, ref, depth));
    }
    const rendered = renderParts(parts, declarationsOf(content.variables), this.variables, this.options, included);
    for (const name of rendered.missingVariables) this.missing.add(name);
    for (const name of rendered.usedVariables) this.used.add(name);
    return rendered.text;
  }

  /** The rendered text of the dependency of `template` that `ref` names. */
  private async include(template: EntityRow, ref: string, depth: number): Promise<string> {
    const edges = (await this.dependencies()).filter((edge) => edge.dependentId === template.id);
    const byId = UUID.test(ref) ? edges.find((edge) => edge.entityId === ref) : undefined;
    let edge = byId;
    let row: EntityRow | undefined;
    if (byId?.version !== undefined) row = await this.read(byId.entityId, byId.version);
    if (!byId) {
      // By name: the name is the included version's, so read each dependency until one matches.
      for (const candidate of edges) {
        const candidateRow = candidate.version === undefined ? undefined : await this.read(candidate.entityId, candidate.version);
        if (candidateRow?.name === ref) {
          edge = candidate;
          row = candidateRow;
          break;
        }
      }
    }
    if (!edge) throw partialUnresolved(ref, template.id, "it names no dependency of the template that you may view (add a depends_on relationship to it)");
    if (edge.problem !== undefined) throw partialUnresolved(ref, template.id, edge.problem);
    if (!row) throw partialUnresolved(ref, template.id, "the dependency is not visible to you");
    if (row.entity_type !== "template" && row.entity_type !== "context") {
      throw partialUnresolved(ref, template.id, `a ${row.entity_type} cannot be included (only templates and contexts)`);
    }
    const key = `${row.id}@${row.version}`;
    let text = this.texts.get(key);
    if (!text) {
      text = this.render(row, template.id, depth + 1);
      this.texts.set(key, text);
    } else {
      this.note(row, template.id);
    }
    return text;
  }

  private dependencies(): Promise<readonly ResolvedDependency[]> {
    if (!this.resolve) throw partialUnresolved("", this.root.id, "composition is not available in this deployment");
    this.closure ??= this.resolve(this.root.id);
    return this.closure;
  }

  /** The version with the caller's access; undefined when the caller may not view it. */
  private read(entityId: string, version: number): Promise<EntityRow | undefined> {
    const key = `${entityId}@${version}`;
    let row = this.rows.get(key);
    if (!row) {
      row = getEntity(this.db, this.caller, { id: entityId }, { kind: "version", version }, true).then(
        (view) => view.row,
        (err: unknown) => {
          if (err instanceof NotFoundError) return undefined;
          throw err;
        },
      );
      this.rows.set(key, row);
    }
    return row;
  }

  private note(row: EntityRow, includedBy: string | undefined): void {
    const key = `${row.id}@${row.version}`;
    if (this.inReceipt.has(key)) return;
    this.inReceipt.add(key);
    this.receipt.push({
      entityId: row.id,
      name: row.name,
      entityType: row.entity_type,
      version: row.version,
      contentHash: row.content_hash,
      includedBy,
    });
  }
}

/**
 * Renders the selected version of a template entity (by id or name) for a caller with view (NOT_FOUND otherwise,
 * like GetEntity; a soft-deleted template renders, as GetEntity still returns it), including its
 * partials through `resolve` (the graph service). Read-only.
 */
export async function renderEntity(
  db: Knex,
  caller: Caller,
  ref: EntityRef,
  selector: VersionSelector,
  variables: Record<string, unknown>,
  options: RenderOptions,
  resolve?: ResolveDependencies,
): Promise<{ row: EntityRow; rendered: ComposedRender }> {
  const { row } = await getEntity(db, caller, ref, selector, true);
  if (row.entity_type !== "template") throw notATemplate(`the entity is a ${row.entity_type}, not a template`);
  const composition = new Composition(db, caller, row, resolve, variables, options);
  const text = await composition.render(row, undefined, 0);
  if (Buffer.byteLength(text) > options.maxBytes) throw tooLarge(Buffer.byteLength(text), options.maxBytes);
  return {
    row,
    rendered: {
      text,
      missingVariables: [...composition.missing],
      unusedVariables: Object.keys(variables).filter((name) => !composition.used.has(name)).sort(),
      receipt: composition.receipt,
    },
  };
}
