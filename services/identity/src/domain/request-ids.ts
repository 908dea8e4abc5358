import { createHash } from "node:crypto";

/**
 * A UUID (version 8 layout) derived from `parts`: the same idempotency key always names the same
 * row. Creates with an AIP-155 `request_id` (tenants, users, API keys, OIDC providers) derive the
 * new row's id from it, so a retry finds the first call's row by primary key.
 */
export function derivedUuid(...parts: string[]): string {
  const h = createHash("sha256").update(parts.join("\u0000")).digest();
  h[6] = (h[6]! & 0x0f) | 0x80;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const hex = h.subarray(0, 16).toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}
