import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import { InvalidArgumentError } from "./errors.js";

/**
 * A small AIP-160 filter language for list and tail methods (`ListAuditEvents`, `TailAuditEvents`,
 * `ListUsageEvents`): comparisons `field OP value` with `=`, `!=`, `<`, `<=`, `>`, `>=`, combined
 * with `AND`, `OR`, `NOT` and parentheses (`AND` binds tighter than `OR`; juxtaposition is `AND`,
 * as AIP-160 says). Values are strings in double or single quotes (backslash escapes), or bare words
 * (enum names). A trailing `*` in a string value of a field that allows it matches a prefix
 * (`event_type = "content.label.*"`). Time fields take RFC 3339 strings and only `<`, `<=`, `>`,
 * `>=`.
 *
 * Hand-written rather than a library: the grammar is this small, and every error must name its
 * position (INVALID_ARGUMENT, reason FILTER_INVALID, field `filter`, "position 14: …").
 *
 * The caller describes its fields ({@link FilterFields}); {@link parseFilter} checks names, operators
 * and values against them and returns a tree whose values are already in stored form. A store turns
 * it into SQL with {@link filterSql} (column names come from the field table, values are always
 * bound); a tail checks events in memory with {@link filterMatches}.
 */

/** How one filterable field behaves. */
export interface FilterField {
  type: "string" | "uuid" | "enum" | "time";
  /** SQL column (a plain identifier) for {@link filterSql}. */
  column: string;
  /** A trailing `*` in the value matches a prefix. */
  prefix?: boolean;
  /** `enum`: the accepted names and the stored values each stands for. */
  values?: Record<string, readonly string[]>;
  /** `string`: the stored form of a value (e.g. a service name to its database role). */
  stored?: (value: string) => string;
}

/** The filterable fields of a method, by their API name. */
export type FilterFields = Record<string, FilterField>;

export type Comparator = "=" | "!=" | "<" | "<=" | ">" | ">=";

/** A parsed filter. */
export type Filter =
  | { op: "and" | "or"; left: Filter; right: Filter }
  | { op: "not"; operand: Filter }
  /** `values`: stored values, any of which matches (an enum name may stand for several); `time` for time fields. */
  | { op: "cmp"; field: string; comparator: Comparator; values: string[]; prefix: boolean; time?: Date };

interface Token {
  kind: "word" | "string" | "op" | "(" | ")" | "end";
  text: string;
  /** 1-based character position in the filter. */
  position: number;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$/i;

function fail(position: number, description: string): never {
  throw new InvalidArgumentError({ field: "filter", description: `position ${position}: ${description}` }, { reason: ErrorReason.FILTER_INVALID });
}

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    const position = i + 1;
    if (/\s/.test(c)) {
      i++;
    } else if (c === "(" || c === ")") {
      tokens.push({ kind: c, text: c, position });
      i++;
    } else if (c === '"' || c === "'") {
      let value = "";
      i++;
      for (;;) {
        if (i >= text.length) fail(position, "unterminated string");
        const d = text[i]!;
        if (d === c) break;
        if (d === "\\") {
          i++;
          if (i >= text.length) fail(position, "unterminated string");
        }
        value += text[i]!;
        i++;
      }
      i++;
      tokens.push({ kind: "string", text: value, position });
    } else if ("<>=!".includes(c)) {
      const two = text.slice(i, i + 2);
      const op = ["<=", ">=", "!="].includes(two) ? two : c;
      if (op === "!") fail(position, "unexpected '!' (use != or NOT)");
      tokens.push({ kind: "op", text: op, position });
      i += op.length;
    } else if (/[A-Za-z0-9_]/.test(c)) {
      const m = /^[A-Za-z0-9_.:+-]+/.exec(text.slice(i))!;
      tokens.push({ kind: "word", text: m[0], position });
      i += m[0].length;
    } else {
      fail(position, `unexpected character ${JSON.stringify(c)}`);
    }
  }
  tokens.push({ kind: "end", text: "", position: text.length + 1 });
  return tokens;
}

/**
 * Parses `text` against `fields`; undefined for an empty filter. INVALID_ARGUMENT (FILTER_INVALID,
 * field `filter`) naming the position of the first problem.
 */
export function parseFilter(text: string, fields: FilterFields): Filter | undefined {
  const tokens = tokenize(text);
  let at = 0;
  const peek = () => tokens[at]!;
  const next = () => tokens[at++]!;
  const isWord = (t: Token, w: string) => t.kind === "word" && t.text === w;

  const or = (): Filter => {
    let left = and();
    while (isWord(peek(), "OR")) {
      next();
      left = { op: "or", left, right: and() };
    }
    return left;
  };
  const and = (): Filter => {
    let left = unary();
    for (;;) {
      const t = peek();
      if (isWord(t, "AND")) next();
      else if (t.kind === "end" || t.kind === ")" || isWord(t, "OR")) return left;
      left = { op: "and", left, right: unary() };
    }
  };
  const unary = (): Filter => {
    if (isWord(peek(), "NOT")) {
      next();
      return { op: "not", operand: unary() };
    }
    const t = peek();
    if (t.kind === "(") {
      next();
      const inner = or();
      const close = next();
      if (close.kind !== ")") fail(close.position, "expected ')'");
      return inner;
    }
    return comparison();
  };
  const comparison = (): Filter => {
    const name = next();
    if (name.kind !== "word" || ["AND", "OR", "NOT"].includes(name.text)) fail(name.position, name.kind === "end" ? "expected a field name, found the end" : `expected a field name, found ${JSON.stringify(name.text)}`);
    const field = fields[name.text];
    if (!field) fail(name.position, `unknown field ${JSON.stringify(name.text)}; filterable fields: ${Object.keys(fields).join(", ")}`);
    const op = next();
    if (op.kind !== "op") fail(op.position, `expected an operator (=, !=, <, <=, >, >=) after ${name.text}`);
    const comparator = op.text as Comparator;
    const value = next();
    if (value.kind !== "string" && value.kind !== "word") fail(value.position, `expected a value after ${name.text} ${comparator}`);
    return resolve(name.text, field, comparator, value);
  };

  if (peek().kind === "end") return undefined;
  const filter = or();
  const rest = peek();
  if (rest.kind !== "end") fail(rest.position, `unexpected ${JSON.stringify(rest.text)}`);
  return filter;
}

function resolve(name: string, field: FilterField, comparator: Comparator, value: Token): Filter {
  const ordering = comparator !== "=" && comparator !== "!=";
  if (field.type === "time") {
    if (!ordering) fail(value.position, `${name} takes <, <=, > or >=`);
    const time = new Date(value.text);
    if (!RFC3339.test(value.text) || Number.isNaN(time.getTime())) fail(value.position, `${name} needs an RFC 3339 time such as "2026-12-01T00:00:00Z"`);
    return { op: "cmp", field: name, comparator, values: [value.text], prefix: false, time };
  }
  if (ordering) fail(value.position, `${name} takes = or !=`);
  if (field.type === "enum") {
    const stored = value.kind === "word" ? field.values?.[value.text] : undefined;
    if (!stored) fail(value.position, `${name} must be one of ${Object.keys(field.values ?? {}).join(", ")}`);
    return { op: "cmp", field: name, comparator, values: [...stored], prefix: false };
  }
  const prefix = field.prefix === true && value.text.endsWith("*");
  const text = prefix ? value.text.slice(0, -1) : value.text;
  if (text.includes("*")) fail(value.position, field.prefix ? `* is only allowed at the end of a ${name} value` : `${name} does not take wildcards`);
  if (field.type === "uuid" && !UUID.test(text)) fail(value.position, `${name} must be a UUID`);
  return { op: "cmp", field: name, comparator, values: [field.stored ? field.stored(text) : field.type === "uuid" ? text.toLowerCase() : text], prefix };
}

/** A filter as a SQL condition with `?` bindings (knex raw), columns from `fields`. */
export function filterSql(filter: Filter, fields: FilterFields): { sql: string; bindings: (string | Date)[] } {
  switch (filter.op) {
    case "and":
    case "or": {
      const l = filterSql(filter.left, fields);
      const r = filterSql(filter.right, fields);
      return { sql: `(${l.sql} ${filter.op} ${r.sql})`, bindings: [...l.bindings, ...r.bindings] };
    }
    case "not": {
      const o = filterSql(filter.operand, fields);
      return { sql: `(not coalesce(${o.sql}, false))`, bindings: o.bindings };
    }
    case "cmp": {
      const column = fields[filter.field]!.column;
      if (filter.time) return { sql: `${column} ${filter.comparator} ?`, bindings: [filter.time] };
      const negate = filter.comparator === "!=";
      if (filter.prefix) {
        const pattern = `${filter.values[0]!.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
        return { sql: negate ? `(${column} is null or ${column} not like ?)` : `${column} like ?`, bindings: [pattern] };
      }
      const marks = filter.values.map(() => "?").join(", ");
      return { sql: negate ? `(${column} is null or ${column} not in (${marks}))` : `${column} in (${marks})`, bindings: [...filter.values] };
    }
  }
}

/** Whether a record (stored values by API field name; null for absent) satisfies the filter. */
export function filterMatches(filter: Filter, record: Record<string, string | Date | null>): boolean {
  switch (filter.op) {
    case "and":
      return filterMatches(filter.left, record) && filterMatches(filter.right, record);
    case "or":
      return filterMatches(filter.left, record) || filterMatches(filter.right, record);
    case "not":
      return !filterMatches(filter.operand, record);
    case "cmp": {
      const value = record[filter.field] ?? null;
      if (filter.time) {
        if (!(value instanceof Date)) return false;
        const [a, b] = [value.getTime(), filter.time.getTime()];
        return filter.comparator === "<" ? a < b : filter.comparator === "<=" ? a <= b : filter.comparator === ">" ? a > b : a >= b;
      }
      const text = value === null ? null : String(value);
      const hit = text !== null && (filter.prefix ? text.startsWith(filter.values[0]!) : filter.values.includes(text));
      return filter.comparator === "!=" ? !hit : hit;
    }
  }
}
