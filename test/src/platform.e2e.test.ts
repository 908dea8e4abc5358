import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { create, fromBinary, toBinary, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { loadConfig, startService, type RunningService, type ServiceModule } from "@promptcraft/platform";
import { randomUUID } from "node:crypto";
import { identityService, issueAccessToken, type KeyRing } from "@promptcraft/identity";
import { contentService } from "@promptcraft/content";
import { graphService } from "@promptcraft/graph";
import { searchService } from "@promptcraft/search";
import { analyticsService } from "@promptcraft/analytics";
import { Health, HealthCheckResponse_ServingStatus } from "@promptcraft/proto/grpc/health/v1/health_pb";
import {
  ServerReflectionRequestSchema,
  ServerReflectionResponseSchema,
  type ServerReflectionResponse,
} from "@promptcraft/proto/grpc/reflection/v1/reflection_pb";
import { AuthService } from "@promptcraft/proto/promptcraft/identity/v1/auth_service_pb";
import { IdentityService } from "@promptcraft/proto/promptcraft/identity/v1/identity_service_pb";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { GraphService } from "@promptcraft/proto/promptcraft/graph/v1/graph_service_pb";
import { SearchService } from "@promptcraft/proto/promptcraft/search/v1/search_service_pb";
import { AnalyticsService } from "@promptcraft/proto/promptcraft/analytics/v1/analytics_service_pb";
import { createTenant, createUser, grpc, grpcUnary } from "@promptcraft/testing";
import { createRequire } from "node:module";
import { testServiceEnv } from "./identity-e2e-helpers.js";

const DATABASE_URL = process.env.DATABASE_URL;
if (!DATABASE_URL) throw new Error("DATABASE_URL is not set: run through `npm test`");

const SERVICES: { module: ServiceModule; contracts: DescService[] }[] = [
  { module: identityService, contracts: [IdentityService, AuthService] },
  { module: contentService, contracts: [ContentService] },
  { module: graphService, contracts: [GraphService] },
  { module: searchService, contracts: [SearchService] },
  { module: analyticsService, contracts: [AnalyticsService] },
];

/** Analytics' platform-admin methods: built, and public in `serve()` (the handler checks the admin secret). */
const PLATFORM_ADMIN_ANALYTICS = ["ListReadModels", "RefreshReadModel", "GetPartitionMaintenanceStatus", "RunPartitionMaintenance"].map(
  (m) => `promptcraft.analytics.v1.AnalyticsService/${m}`,
);

/** Methods built so far (they do not answer UNIMPLEMENTED). */
const BUILT = new Set([
  "promptcraft.identity.v1.AuthService/GetJwks",
  "promptcraft.identity.v1.AuthService/RotateSigningKey",
  ...["Login", "RefreshToken", "Logout", "ListSessions", "RevokeSession", "ChangePassword", "ResetPassword", "GetLoginOptions"].map((m) => `promptcraft.identity.v1.AuthService/${m}`),
  ...["CreateTenant", "GetTenant", "ListTenants", "UpdateTenant", "SuspendTenant", "ResumeTenant"].map((m) => `promptcraft.identity.v1.IdentityService/${m}`),
  ...["CreateApiKey", "GetApiKey", "ListApiKeys", "RevokeApiKey"].map((m) => `promptcraft.identity.v1.IdentityService/${m}`),
  ...["CreateOidcProvider", "GetOidcProvider", "ListOidcProviders", "UpdateOidcProvider", "DeleteOidcProvider", "ListLinkedIdentities", "DeleteLinkedIdentity"].map(
    (m) => `promptcraft.identity.v1.IdentityService/${m}`,
  ),
  ...["StartOidcLogin", "CompleteOidcLogin", "AcceptInvitation"].map((m) => `promptcraft.identity.v1.AuthService/${m}`),
  "promptcraft.identity.v1.AuthService/IntrospectCredential",
  ...["CreateUser", "GetUser", "ListUsers", "UpdateUser", "DeactivateUser", "ReactivateUser", "DeleteUser", "UndeleteUser"].map(
    (m) => `promptcraft.identity.v1.IdentityService/${m}`,
  ),
  ...["CreateEntity", "GetEntity", "BatchGetEntities", "ListEntities", "UpdateEntity", "DeleteEntity", "UndeleteEntity", "PurgeEntity", "ListEntityNameHistory"].map(
    (m) => `promptcraft.content.v1.ContentService/${m}`,
  ),
  ...["ListEntityRevisions", "RollbackEntity", "DiffEntityRevisions"].map((m) => `promptcraft.content.v1.ContentService/${m}`),
  ...["SetLabel", "RemoveLabel", "ListLabels", "ListLabelHistory", "GrantShare", "ListShares", "RevokeShare", "AddFavorite", "RemoveFavorite", "ListFavorites", "RenderTemplate"].map(
    (m) => `promptcraft.content.v1.ContentService/${m}`,
  ),
  ...["StreamUsageEvents", "IngestUsageEvents", "ListUsageEvents", "GetUsageSummary", "GetBillingSummary", "ListAuditEvents", "TailAuditEvents"].map((m) => `promptcraft.analytics.v1.AnalyticsService/${m}`),
  ...["GetEntityStats", "ListEntityStats", "GetEntityCoUsage", "CompareLabelMove", "ListQuotas", "CheckQuota"].map((m) => `promptcraft.analytics.v1.AnalyticsService/${m}`),
  ...PLATFORM_ADMIN_ANALYTICS,
  ...[
    "SearchEntities",
    "FindSimilarEntities",
    "FindNearDuplicates",
    "GetEmbeddingStatus",
    "GetEmbeddingStats",
    "ReindexEntities",
    "GetEmbeddingJob",
    "ListEmbeddingJobs",
    "CancelEmbeddingJob",
    "ListEmbeddingModels",
  ].map((m) => `promptcraft.search.v1.SearchService/${m}`),
  ...[
    "CreateRelationship",
    "GetRelationship",
    "ListRelationships",
    "UpdateRelationship",
    "DeleteRelationship",
    "GetEntityGraph",
    "ResolveDependencies",
    "AnalyzeImpact",
    "ListSuggestions",
    "GenerateSuggestions",
    "AcceptSuggestion",
    "DismissSuggestion",
  ].map((m) => `promptcraft.graph.v1.GraphService/${m}`),
]);
/** Methods callable without an access token. */
const PUBLIC = new Set([
  ...["Login", "AcceptInvitation", "RefreshToken", "Logout", "GetLoginOptions", "StartOidcLogin", "CompleteOidcLogin", "GetJwks", "RotateSigningKey"].map(
    (m) => `promptcraft.identity.v1.AuthService/${m}`,
  ),
  ...["CreateTenant", "GetTenant", "ListTenants", "UpdateTenant", "SuspendTenant", "ResumeTenant"].map((m) => `promptcraft.identity.v1.IdentityService/${m}`),
  ...PLATFORM_ADMIN_ANALYTICS,
]);

const running = new Map<string, RunningService>();
/** A valid access token of a fixture owner, minted by identity's own domain function. */
let token: string;

beforeAll(async () => {
  // Identity first: the others verify tokens against its JWK Set (IDENTITY_URL).
  let identityUrl = "";
  for (const { module } of SERVICES) {
    const env = { ...testServiceEnv(), DB_POOL_MAX: "2", IDENTITY_URL: identityUrl || undefined };
    const service = await startService(module, loadConfig(module.config, env));
    running.set(module.name, service);
    if (module.name === "identity") {
      identityUrl = `http://127.0.0.1:${service.grpcPort}`;
      const tenantId = await createTenant(service.deps.db);
      const userId = await createUser(service.deps.db, tenantId, "owner");
      const issued = await issueAccessToken(service.state as KeyRing, { issuer: service.deps.config.TOKEN_ISSUER, ttlS: 900 }, {
        tenantId,
        userId,
        role: "owner",
        sessionId: randomUUID(),
      });
      token = issued.token;
    }
  }
});
afterAll(async () => {
  await Promise.all([...running.values()].map((s) => s.close()));
});

const grpcAddress = (name: string) => `127.0.0.1:${running.get(name)!.grpcPort}`;
const connectUrl = (name: string) => `http://127.0.0.1:${running.get(name)!.connectPort}`;

/** One reflection request over a bidi stream with a plain grpc-js client. */
async function reflect(address: string, request: Parameters<typeof create<typeof ServerReflectionRequestSchema>>[1]): Promise<ServerReflectionResponse> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  try {
    return await new Promise((resolve, reject) => {
      const call = client.makeBidiStreamRequest(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        (b: Buffer) => b,
        (b: Buffer) => b,
      );
      call.on("data", (bytes: Buffer) => resolve(fromBinary(ServerReflectionResponseSchema, bytes)));
      call.on("error", reject);
      call.write(Buffer.from(toBinary(ServerReflectionRequestSchema, create(ServerReflectionRequestSchema, request))));
      call.end();
    });
  } finally {
    client.close();
  }
}

describe("all five services on real ports", () => {
  for (const { module, contracts } of SERVICES) {
    describe(module.name, () => {
      test("gRPC health: the server and each of its services are SERVING", async () => {
        for (const service of ["", ...contracts.map((c) => c.typeName)]) {
          const result = await grpcUnary(grpcAddress(module.name), Health.method.check, { service });
          assert.ok("response" in result, `health of '${service}'`);
          assert.equal(result.response.status, HealthCheckResponse_ServingStatus.SERVING);
        }
      });

      test("reflection lists its services and serves their descriptors", async () => {
        const list = await reflect(grpcAddress(module.name), { messageRequest: { case: "listServices", value: "" } });
        assert.equal(list.messageResponse.case, "listServicesResponse");
        const names = list.messageResponse.case === "listServicesResponse" ? list.messageResponse.value.service.map((s) => s.name) : [];
        for (const expected of [...contracts.map((c) => c.typeName), "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"]) {
          assert.ok(names.includes(expected), `${expected} listed`);
        }
        for (const contract of contracts) {
          const method = contract.methods[0]!;
          const file = await reflect(grpcAddress(module.name), { messageRequest: { case: "fileContainingSymbol", value: `${contract.typeName}.${method.name}` } });
          assert.equal(file.messageResponse.case, "fileDescriptorResponse");
          const protos = file.messageResponse.case === "fileDescriptorResponse" ? file.messageResponse.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b)) : [];
          const own = protos.find((p) => p.service.some((s) => `${p.package}.${s.name}` === contract.typeName));
          assert.ok(own, `descriptor of ${contract.typeName} returned`);
          assert.ok(protos.some((p) => p.name === "google/protobuf/timestamp.proto" || p.dependency.length === 0), "dependencies come along");
        }
      });

      test("a method not built yet answers UNIMPLEMENTED over gRPC (to an authenticated caller)", async () => {
        for (const contract of contracts) {
          const method = contract.methods.find((m) => m.methodKind === "unary" && !BUILT.has(`${contract.typeName}/${m.name}`));
          if (!method) continue; // every method of this contract is built
          const result = await grpcUnary(grpcAddress(module.name), method as never, {}, { metadata: { authorization: `Bearer ${token}` } });
          assert.ok("failure" in result, `${contract.typeName}.${method.name} answered`);
          assert.equal(result.failure.code, grpc.status.UNIMPLEMENTED, `${contract.typeName}.${method.name}`);
        }
      });

      test("a non-public method refuses an anonymous caller with UNAUTHENTICATED, built or not", async () => {
        for (const contract of contracts) {
          for (const method of contract.methods.filter((m) => m.methodKind === "unary" && !PUBLIC.has(`${contract.typeName}/${m.name}`))) {
            const result = await grpcUnary(grpcAddress(module.name), method as never, {});
            assert.ok("failure" in result, `${contract.typeName}.${method.name} answered`);
            assert.equal(result.failure.code, grpc.status.UNAUTHENTICATED, `${contract.typeName}.${method.name}`);
            assert.equal(result.failure.errorInfo?.reason, "CREDENTIALS_MISSING");
          }
        }
      });

      test("Connect (HTTP/1.1, JSON): health answers and unbuilt methods are unimplemented", async () => {
        const health = await fetch(`${connectUrl(module.name)}/grpc.health.v1.Health/Check`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: "{}",
        });
        assert.equal(health.status, 200);
        assert.deepEqual(await health.json(), { status: "SERVING" });
        // An unbuilt method that needs credentials; identity has none left, so there an unbuilt public one.
        const unbuilt = contracts.flatMap((c) => c.methods.filter((m) => m.methodKind === "unary" && !BUILT.has(`${c.typeName}/${m.name}`)).map((m) => `${c.typeName}/${m.name}`));
        const path = unbuilt.find((p) => !PUBLIC.has(p)) ?? unbuilt[0];
        if (path === undefined) return; // every method of this service is built
        const call = (headers: Record<string, string>) =>
          fetch(`${connectUrl(module.name)}/${path}`, {
            method: "POST",
            headers: { "content-type": "application/json", ...headers },
            body: "{}",
          });
        const res = await call({ authorization: `Bearer ${token}` });
        assert.equal(res.status, 501);
        assert.equal(((await res.json()) as { code: string }).code, "unimplemented");
        const anonymous = await call({});
        const expected = PUBLIC.has(path) ? { status: 501, code: "unimplemented" } : { status: 401, code: "unauthenticated" };
        assert.equal(anonymous.status, expected.status);
        assert.equal(((await anonymous.json()) as { code: string }).code, expected.code);
      });
    });
  }
});

describe("a service started alone (its built main.js, as containers run it)", () => {
  const require = createRequire(import.meta.url);
  const main = require.resolve("@promptcraft/content").replace(/index\.js$/, "main.js");

  const run = (env: Record<string, string>) =>
    new Promise<{ code: number | null; stderr: string; stdout: string }>((resolve) => {
      const child = spawn(process.execPath, [main], { env: { PATH: process.env.PATH ?? "", ...env } });
      let stderr = "";
      let stdout = "";
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.on("exit", (code) => resolve({ code, stderr, stdout }));
    });

  test("fails fast with the bad variables named", async () => {
    const result = await run({ DATABASE_URL: "not a url", GRPC_PORT: "99999" });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /DATABASE_URL/);
    assert.match(result.stderr, /GRPC_PORT/);
  });

  test("fails with a clear message when the database is unreachable", async () => {
    const result = await run({ DATABASE_URL: "postgres://nobody@127.0.0.1:1/none", GRPC_PORT: "0", CONNECT_PORT: "0" });
    assert.equal(result.code, 1);
    assert.match(result.stdout + result.stderr, /cannot reach the database/);
  });

  test("serves, then stops cleanly on SIGTERM", async () => {
    const child = spawn(process.execPath, [main], {
      env: { PATH: process.env.PATH ?? "", DATABASE_URL: DATABASE_URL, GRPC_PORT: "0", CONNECT_PORT: "0", DB_POOL_MAX: "1" },
    });
    let out = "";
    await new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (d: Buffer) => {
        out += d.toString();
        if (out.includes('"msg":"serving"')) resolve();
      });
      child.on("exit", (code) => reject(new Error(`exited early with ${code}: ${out}`)));
    });
    child.removeAllListeners("exit");
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    child.kill("SIGTERM");
    assert.equal(await exited, 0);
    assert.match(out, /"msg":"stopped"/);
  });
});
