import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import { AbortedError } from "./errors.js";

/**
 * The AIP-154 check of a write that carries an etag: ABORTED (ETAG_MISMATCH, with `current_etag`
 * in the metadata so the client can re-read) unless `etag` is empty (unconditional) or equals
 * `current`, the resource's etag read under the write's row lock. `resource` names it in the message.
 */
export function checkEtag(etag: string, current: string, resource = "resource"): void {
  if (etag !== "" && etag !== current) {
    throw new AbortedError(`the etag does not match the ${resource}'s current state`, {
      reason: ErrorReason.ETAG_MISMATCH,
      metadata: { current_etag: current },
    });
  }
}
