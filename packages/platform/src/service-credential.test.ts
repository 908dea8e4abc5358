import { describe, test } from "vitest";
import assert from "node:assert/strict";
import { AuthService } from "@promptcraft/proto/promptcraft/identity/v1/auth_service_pb";
import type { AuthContext, CallContext } from "./context.js";
import { UnauthenticatedError } from "./errors.js";
import { secretEquals, withServiceCredential } from "./service-credential.js";

const TOKEN = "service-token-0123456789abcdefghijklmnop";
const INGEST = AuthService.method.introspectCredential;
const OTHER = AuthService.method.getJwks;
const MEMBER: AuthContext = { tenantId: "t", userId: "u", role: "editor", kind: "access_token" };

function ctx(method: CallContext["method"], headers: Record<string, string>): CallContext {
  return { method, header: (name: string) => headers[name] } as unknown as CallContext;
}

describe("withServiceCredential", () => {
  const next = async (c: CallContext): Promise<AuthContext> => {
    if (c.header("authorization") === "Bearer member") return MEMBER;
    throw new UnauthenticatedError("invalid credentials");
  };
  const authenticate = withServiceCredential(TOKEN, new Set([INGEST]), next);

  test("the token on a service method is a service caller of no tenant, named by x-promptcraft-service", async () => {
    assert.deepEqual(await authenticate(ctx(INGEST, { authorization: `Bearer ${TOKEN}`, "x-promptcraft-service": "content" })), {
      tenantId: "",
      role: "viewer",
      kind: "service",
      credentialId: "service:content",
    });
    const unnamed = await authenticate(ctx(INGEST, { authorization: `Bearer ${TOKEN}`, "x-promptcraft-service": "Not A Name!" }));
    assert.equal(unnamed.credentialId, "service:unknown");
  });

  test("elsewhere, or with another secret, it is an ordinary bearer (refused); members still pass", async () => {
    await assert.rejects(authenticate(ctx(OTHER, { authorization: `Bearer ${TOKEN}` })), UnauthenticatedError);
    await assert.rejects(authenticate(ctx(INGEST, { authorization: `Bearer ${TOKEN}x` })), UnauthenticatedError);
    assert.deepEqual(await authenticate(ctx(INGEST, { authorization: "Bearer member" })), MEMBER);
  });

  test("without a token configured no call is a service", async () => {
    const off = withServiceCredential(undefined, new Set([INGEST]), next);
    assert.equal(off, next);
  });

  test("secretEquals compares whole secrets of any lengths", () => {
    assert.ok(secretEquals(TOKEN, TOKEN));
    assert.ok(!secretEquals(TOKEN, `${TOKEN}x`));
    assert.ok(!secretEquals("", TOKEN));
  });
});
