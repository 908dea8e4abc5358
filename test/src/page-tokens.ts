import assert from "node:assert/strict";
import type { Outcome } from "./rpc-outcomes.js";

const TIMESTAMP = /^\d{4}-\d\d-\d\dT/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-/;

/**
 * Forgeries of a real page token as a client could write them: valid base64url JSON with the token's
 * own parameter digest and expiry, but one cursor key of the wrong shape (a time that is no time or
 * no date PostgreSQL knows, an id that is no UUID, text with NUL, a number, the key missing) or no
 * cursor at all. Each must be refused before it reaches SQL.
 */
export function forgedPageTokens(token: string): { what: string; token: string }[] {
  const decoded = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as { k: Record<string, unknown> };
  const forge = (cursor: unknown) => Buffer.from(JSON.stringify({ ...decoded, k: cursor })).toString("base64url");
  const forged = [{ what: "no cursor", token: forge(null) }];
  for (const [key, value] of Object.entries(decoded.k)) {
    const text = typeof value === "string" ? value : "";
    const wrong = TIMESTAMP.test(text)
      ? ["yesterday", "2026-02-31T12:00:00.000000Z", "0000-01-01T00:00:00.000000Z", "2026-11-25 12:00:00.123456+00"]
      : UUID.test(text)
        ? ["x", "00000000-0000-0000-0000-00000000000g"]
        : ["a\u0000b"];
    for (const bad of [...wrong, 42]) forged.push({ what: `${key} = ${JSON.stringify(bad)}`, token: forge({ ...decoded.k, [key]: bad }) });
    const { [key]: _dropped, ...without } = decoded.k;
    forged.push({ what: `no ${key}`, token: forge(without) });
  }
  return forged;
}

/**
 * `token` (a real next-page token of `list`) still works, and every forgery of it is INVALID_ARGUMENT
 * (PAGE_TOKEN_INVALID) on the field `page_token` — never INTERNAL.
 */
export async function assertForgedPageTokensRefused<O>(token: string, list: (pageToken: string) => Promise<Outcome<O>>): Promise<void> {
  assert.ok(token !== "", "a next-page token to forge");
  assert.equal((await list(token)).ok, true, "the real token works");
  for (const { what, token: forged } of forgedPageTokens(token)) {
    const outcome = await list(forged);
    const seen = outcome.ok ? "OK" : { code: outcome.code, reason: outcome.reason, fields: outcome.fields };
    assert.deepEqual(seen, { code: "INVALID_ARGUMENT", reason: "PAGE_TOKEN_INVALID", fields: ["page_token"] }, what);
  }
}
