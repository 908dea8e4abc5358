import { createHash } from "node:crypto";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import { InvalidArgumentError } from "./errors.js";

/**
 * Opaque page tokens (AIP-158) for keyset paging: base64url JSON of the last row's sort key, a
 * digest of the request's other parameters (a token used with different parameters, or taken from
 * another query, is refused) and an expiry (24 hours). Not secret and not signed: a forged token
 * only moves the cursor within what the caller may list anyway.
 */
const PAGE_TOKEN_TTL_MS = 24 * 3600 * 1000;

/** What a cursor value must satisfy (a RegExp is one). */
export interface CursorPattern {
  test(value: string): boolean;
}

/** Cursor patterns: a UUID, a UTC timestamp with microseconds (`2026-11-25T12:00:00.123456Z`), a non-negative integer, any text. */
export const CURSOR_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const TIMESTAMP_FORM = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;
/**
 * The form alone would let `2026-02-31T…` or year 0 through, which PostgreSQL refuses to cast: the
 * instant must also exist (the same text back from a Date, to the millisecond) and lie in year 1 or later.
 */
export const CURSOR_TIMESTAMP: CursorPattern = {
  test(value: string): boolean {
    if (!TIMESTAMP_FORM.test(value) || value < "0001") return false;
    const millis = `${value.slice(0, 23)}Z`;
    const date = new Date(millis);
    return !Number.isNaN(date.getTime()) && date.toISOString() === millis;
  },
};
export const CURSOR_INTEGER = /^\d{1,15}$/;
// eslint-disable-next-line no-control-regex -- NUL is exactly what PostgreSQL text cannot hold
export const CURSOR_TEXT = /^[^\u0000]*$/;

/** Page size of a request: 0 means `defaultSize`; at most 1000. */
export function pageSizeOf(requested: number, defaultSize = 50): number {
  return requested <= 0 ? defaultSize : Math.min(requested, 1000);
}

function paramsDigest(params: unknown): string {
  return createHash("sha256").update(JSON.stringify(params)).digest("base64url").slice(0, 22);
}

/** The token of the page after the row whose sort key is `cursor`, bound to `params`. */
export function encodePageCursor(cursor: Record<string, string>, params: unknown, now = Date.now()): string {
  return Buffer.from(JSON.stringify({ k: cursor, p: paramsDigest(params), e: now + PAGE_TOKEN_TTL_MS })).toString("base64url");
}

/**
 * One page of `rows`, fetched with `limit + 1` so that a further row tells whether there is a next
 * page: the first `limit` rows, and the token of the page after the last of them (or "").
 */
export function pageOf<R>(rows: R[], limit: number, params: unknown, cursorOf: (last: R) => Record<string, string>): { page: R[]; nextPageToken: string } {
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return { page, nextPageToken: rows.length > limit && last !== undefined ? encodePageCursor(cursorOf(last), params) : "" };
}

/**
 * The cursor of a page token, or undefined for the first page (empty token); INVALID_ARGUMENT
 * (PAGE_TOKEN_INVALID, field `page_token`) if it is not ours, expired, bound to other parameters,
 * or any key of `shape` is missing or does not match its pattern (so that a forged cursor never
 * reaches SQL as a value it cannot cast). `shape` may also list the keys only (any string).
 */
export function decodePageCursor<K extends string>(
  token: string,
  params: unknown,
  shape: Record<K, CursorPattern> | readonly K[],
  now = Date.now(),
): Record<K, string> | undefined {
  if (token === "") return undefined;
  const invalid = () =>
    new InvalidArgumentError({ field: "page_token", description: "invalid or expired page token, or other parameters changed" }, { reason: ErrorReason.PAGE_TOKEN_INVALID });
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    throw invalid();
  }
  const t = parsed as { k?: unknown; p?: unknown; e?: unknown } | null;
  if (!t || typeof t !== "object" || typeof t.k !== "object" || t.k === null || typeof t.e !== "number" || t.p !== paramsDigest(params) || t.e < now) throw invalid();
  const cursor = t.k as Record<string, unknown>;
  const patterns: [string, CursorPattern][] = Array.isArray(shape)
    ? (shape as readonly K[]).map((k): [string, CursorPattern] => [k, /^/])
    : Object.entries<CursorPattern>(shape as Record<K, CursorPattern>);
  for (const [k, pattern] of patterns) {
    const value = cursor[k];
    if (typeof value !== "string" || !pattern.test(value)) throw invalid();
  }
  return cursor as Record<K, string>;
}
