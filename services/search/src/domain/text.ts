import { createHash } from "node:crypto";

/** Most characters of a version's text that are embedded (beyond it the provider would refuse or truncate anyway). */
export const MAX_EMBEDDED_CHARS = 32_000;

/** The fields of a version whose text is embedded. */
export interface VersionText {
  title: string;
  description: string;
  tags: readonly string[];
  content: unknown;
}

/**
 * The text embedded for a version: title, description, tags, then every string value of the
 * content document (depth first, keys in order) — the same fields full-text search covers — cut
 * at {@link MAX_EMBEDDED_CHARS} (or `maxChars`).
 */
export function embeddingText(v: VersionText & { maxChars?: number }): string {
  const strings: string[] = [];
  collectStrings(v.content, strings);
  const parts = [v.title, v.description, v.tags.join(" "), ...strings].filter((p) => p.length > 0);
  return parts.join("\n").slice(0, v.maxChars ?? MAX_EMBEDDED_CHARS);
}

function collectStrings(value: unknown, out: string[]): void {
  if (typeof value === "string") out.push(value);
  else if (Array.isArray(value)) for (const v of value) collectStrings(v, out);
  else if (value !== null && typeof value === "object") for (const v of Object.values(value)) collectStrings(v, out);
}

/** SHA-256 (hex) of the embedded text: equal hash, same model = the vector can be reused. */
export function textHash(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}
