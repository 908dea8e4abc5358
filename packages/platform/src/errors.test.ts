import { test, describe } from "vitest";
import assert from "node:assert/strict";
import { ErrorInfoSchema, QuotaFailureSchema, RetryInfoSchema } from "@promptcraft/proto/google/rpc/error_details_pb";
import { Code } from "@connectrpc/connect";
import { AbortedError, DEPENDENCY_RETRY_DELAY_MS, dependencyUnavailable, NotFoundError, ResourceExhaustedError, toConnectError } from "./errors.js";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";

const withCode = (code: string, message = "boom") => Object.assign(new Error(message), { code });

function retryDelayMs(error: ReturnType<typeof toConnectError>["error"]): number | undefined {
  const delay = error.findDetails(RetryInfoSchema)[0]?.retryDelay;
  return delay ? Number(delay.seconds) * 1000 + delay.nanos / 1e6 : undefined;
}

describe("toConnectError", () => {
  test("a database that cannot be reached is UNAVAILABLE with DEPENDENCY_UNAVAILABLE, dependency=database and RetryInfo — not INTERNAL", () => {
    for (const err of [withCode("57P01"), withCode("57P03"), withCode("08006"), withCode("53300"), withCode("ECONNREFUSED"), new Error("Connection terminated unexpectedly")]) {
      const mapped = toConnectError(err, "req-1");
      assert.equal(mapped.error.code, Code.Unavailable, String(err));
      assert.equal(mapped.internal, false);
      assert.equal(mapped.dependency, "database");
      const info = mapped.error.findDetails(ErrorInfoSchema)[0];
      assert.equal(info?.reason, "DEPENDENCY_UNAVAILABLE");
      assert.deepEqual(info?.metadata, { dependency: "database" });
      assert.equal(retryDelayMs(mapped.error), DEPENDENCY_RETRY_DELAY_MS);
      // The driver's message stays in the logs, not in the status.
      assert.equal(mapped.error.rawMessage, "database unavailable");
    }
  });

  test("a dependencyUnavailable thrown by our code keeps its dependency", () => {
    const mapped = toConnectError(dependencyUnavailable("identity", "cannot verify credentials right now", withCode("ECONNREFUSED")), "req-2");
    assert.equal(mapped.error.code, Code.Unavailable);
    assert.equal(mapped.dependency, "identity");
    assert.equal(retryDelayMs(mapped.error), DEPENDENCY_RETRY_DELAY_MS);
  });

  test("ABORTED carries RetryInfo when the thrower knows the wait, and none otherwise", () => {
    assert.equal(retryDelayMs(toConnectError(new AbortedError("busy", { retryAfterMs: 5000 }), "r").error), 5000);
    assert.equal(retryDelayMs(toConnectError(new AbortedError("conflict"), "r").error), undefined);
  });

  test("RESOURCE_EXHAUSTED carries its QuotaFailure violations and RetryInfo when given, and no QuotaFailure otherwise", () => {
    const quota = toConnectError(
      new ResourceExhaustedError("used up", { reason: ErrorReason.QUOTA_EXCEEDED, retryAfterMs: 60_000, quotaViolations: [{ subject: "tenant:t1", description: "renders: 3 of 3 used" }] }),
      "r",
    ).error;
    assert.equal(quota.code, Code.ResourceExhausted);
    assert.deepEqual(quota.findDetails(QuotaFailureSchema)[0]?.violations.map((v) => [v.subject, v.description]), [["tenant:t1", "renders: 3 of 3 used"]]);
    assert.equal(retryDelayMs(quota), 60_000);
    assert.deepEqual(toConnectError(new ResourceExhaustedError("slow down"), "r").error.findDetails(QuotaFailureSchema), []);
  });

  test("other errors keep their mapping: conflicts ABORTED, domain errors their code, the unknown INTERNAL", () => {
    assert.equal(toConnectError(withCode("40001"), "r").error.code, Code.Aborted);
    assert.equal(toConnectError(withCode("23505"), "r").error.code, Code.Internal);
    assert.equal(toConnectError(new Error("bug"), "r").internal, true);
    const notFound = toConnectError(new NotFoundError("gone"), "r");
    assert.equal(notFound.error.code, Code.NotFound);
    assert.equal(notFound.dependency, undefined);
    assert.equal(retryDelayMs(notFound.error), undefined);
  });
});
