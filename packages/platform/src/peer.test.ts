import { test } from "vitest";
import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import type { CallContext } from "./context.js";
import { UnavailableError } from "./errors.js";
import { onBehalfOf, peerUnavailable } from "./peer.js";

function callContext(init: { authorization?: string; deadline?: number }): CallContext {
  const headers: Record<string, string | undefined> = { authorization: init.authorization };
  return {
    requestId: "req-1",
    signal: new AbortController().signal,
    deadline: init.deadline,
    traceContext: undefined,
    header: (name: string) => headers[name],
  } as unknown as CallContext;
}

test("onBehalfOf: the caller's credentials and request id, its signal, and a deadline within the caller's", () => {
  const ctx = callContext({ authorization: "Bearer t0k" });
  const options = onBehalfOf(ctx, 3000);
  assert.deepEqual(options.headers, { "x-request-id": "req-1", authorization: "Bearer t0k" });
  assert.equal(options.signal, ctx.signal);
  assert.equal(options.timeoutMs, 3000, "no caller deadline: the peer's own limit");
  const soon = onBehalfOf(callContext({ deadline: Date.now() + 1000 }), 3000);
  assert.ok(soon.timeoutMs! <= 800, `keeps a fifth of the caller's time for its answer (${soon.timeoutMs})`);
  assert.equal(onBehalfOf(callContext({ deadline: Date.now() - 5 }), 3000).timeoutMs, 1, "a passed deadline still gives a valid timeout");
  assert.deepEqual(onBehalfOf(callContext({}), 10).headers, { "x-request-id": "req-1" }, "no credentials to forward: none sent");
});

test("peerUnavailable: a peer that is down, slow, broken, not built or reset mid-call is DEPENDENCY_UNAVAILABLE naming it; its answers to the request are the caller's to read", () => {
  const live = new AbortController().signal;
  for (const code of [Code.Unavailable, Code.DeadlineExceeded, Code.Internal, Code.Unknown, Code.Unimplemented, Code.ResourceExhausted, Code.Canceled]) {
    const mapped = peerUnavailable("graph", new ConnectError("x", code), live);
    assert.ok(mapped instanceof UnavailableError, Code[code]);
    assert.equal(mapped.reason, ErrorReason.DEPENDENCY_UNAVAILABLE);
    assert.deepEqual(mapped.metadata, { dependency: "graph" });
    assert.ok(mapped.retryAfterMs! > 0);
  }
  for (const code of [Code.NotFound, Code.PermissionDenied, Code.FailedPrecondition, Code.InvalidArgument]) {
    assert.equal(peerUnavailable("graph", new ConnectError("x", code), live), undefined, Code[code]);
  }
  const caller = new AbortController();
  caller.abort();
  const cancelled = peerUnavailable("graph", new ConnectError("gone", Code.Canceled), caller.signal);
  assert.ok(cancelled instanceof ConnectError && cancelled.code === Code.Canceled, "a cancelled caller stays cancelled");
});
