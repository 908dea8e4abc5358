import { createHash } from "node:crypto";
import { InvalidArgumentError } from "@promptcraft/platform";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";

/**
 * Opaque page tokens (AIP-158): base64url JSON of the last row's sort key, a digest of the
 * request's other parameters (a token used with different parameters is refused) and an expiry
 * (24 hours). Not secret and not signed: a forged token only moves the cursor within what the
 * caller may list anyway.
 */
const TTL_MS = 24 * 3600 * 1000;

/** Default and maximum page sizes. */
export const DEFAULT_PAGE_SIZE = 50;

export function pageSize(requested: number): number {
  return requested <= 0 ? DEFAULT_PAGE_SIZE : Math.min(requested, 1000);
}

function digest(params: unknown): string {
  return createHash("sha256").update(JSON.stringify(params)).digest("base64url").slice(0, 22);
}

export function encodePageToken(key: Record<string, string>, params: unknown, now = Date.now()): string {
  return Buffer.from(JSON.stringify({ k: key, p: digest(params), e: now + TTL_MS })).toString("base64url");
}

/** The cursor of a page token, or undefined for the first page; INVALID_ARGUMENT (PAGE_TOKEN_INVALID) if it is not ours, expired or bound to other parameters. */
export function decodePageToken(token: string, params: unknown, now = Date.now()): Record<string, string> | undefined {
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
  if (!t || typeof t !== "object" || typeof t.k !== "object" || t.k === null || typeof t.e !== "number" || t.p !== digest(params) || t.e < now) throw invalid();
  const key = t.k as Record<string, unknown>;
  if (!Object.values(key).every((v) => typeof v === "string")) throw invalid();
  return key as Record<string, string>;
}
