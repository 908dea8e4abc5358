import { test } from "vitest";
import assert from "node:assert/strict";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import { AbortedError } from "./errors.js";
import { checkEtag } from "./etag.js";

test("checkEtag: empty or current passes; another is ABORTED (ETAG_MISMATCH) naming the current etag", () => {
  checkEtag("", "7");
  checkEtag("7", "7");
  assert.throws(
    () => checkEtag("6", "7", "entity"),
    (err: unknown) =>
      err instanceof AbortedError && err.reason === ErrorReason.ETAG_MISMATCH && err.metadata.current_etag === "7" && /entity/.test(err.message),
  );
});
