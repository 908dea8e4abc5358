import { randomUUID } from "node:crypto";
import type { DescMethodUnary, DescMessage, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { loadConfig, startService, type RunningService } from "@promptcraft/platform";
import { identityService, issueAccessToken, type KeyRing } from "@promptcraft/identity";
import { graphService } from "@promptcraft/graph";
import { contentService } from "@promptcraft/content";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { GraphService } from "@promptcraft/proto/promptcraft/graph/v1/graph_service_pb";
import { withTenant } from "@promptcraft/db";
import { createEntity } from "@promptcraft/content/fixtures";
import { createTenant, createUser, type UserRole } from "@promptcraft/testing";
import { testServiceEnv } from "./identity-e2e-helpers.js";
import { unaryCall, type Outcome, type Protocol } from "./rpc-outcomes.js";

export { badFields, failure, ok, PROTOCOLS, type Outcome, type Protocol } from "./rpc-outcomes.js";

/**
 * Shared harness of the graph e2e tests: an identity service (its JWK Set verifies access tokens)
 * and a graph service on free ports, on the test database. Entities are arranged with content's
 * fixtures (content's own SQL); calls go over gRPC or Connect and come back as an {@link Outcome}.
 */

export interface TestUser {
  id: string;
  role: UserRole;
  token: string;
}

/** Whether the tests run on the embedded engine (one transaction at a time). */
export const EMBEDDED = process.env.PROMPTCRAFT_TEST_DB_KIND === "embedded";

export class GraphHarness {
  identity!: RunningService;
  graph!: RunningService;
  keys!: KeyRing;

  /** A content service asking this graph for dependents (`withContent`). */
  content?: RunningService;

  /** Starts identity and graph (and content `withContent`); `graphEnv` overrides graph's configuration. */
  async start(options: { withContent?: boolean; graphEnv?: Record<string, string> } = {}): Promise<void> {
    const base = testServiceEnv();
    this.identity = await startService(identityService, loadConfig(identityService.config, base));
    this.keys = this.identity.state as KeyRing;
    const identityUrl = `http://127.0.0.1:${this.identity.grpcPort}`;
    this.graph = await startService(graphService, loadConfig(graphService.config, { ...base, DB_POOL_MAX: "8", IDENTITY_URL: identityUrl, ...options.graphEnv }));
    if (options.withContent) {
      this.content = await startService(contentService, loadConfig(contentService.config, { ...base, IDENTITY_URL: identityUrl, GRAPH_URL: `http://127.0.0.1:${this.graph.grpcPort}` }));
    }
  }

  async close(): Promise<void> {
    await this.content?.close();
    await this.graph?.close();
    await this.identity?.close();
  }

  /** The test database (superuser connection of the identity service's pool). */
  get db() {
    return this.identity.deps.db;
  }

  async token(tenantId: string, userId: string, role: UserRole): Promise<string> {
    return (await issueAccessToken(this.keys, { issuer: "promptcraft-identity", ttlS: 900 }, { tenantId, userId, role, sessionId: randomUUID() })).token;
  }

  /** A fresh tenant with one user per given role (in that order) and their tokens. */
  async tenantWith(roles: UserRole[]): Promise<{ tenantId: string; users: TestUser[] }> {
    const tenantId = await createTenant(this.db);
    const users: TestUser[] = [];
    for (const role of roles) {
      const id = await createUser(this.db, tenantId, role);
      users.push({ id, role, token: await this.token(tenantId, id, role) });
    }
    return { tenantId, users };
  }

  /** `n` entities owned by `ownerId`, visible to the whole tenant unless said otherwise. */
  async entities(tenantId: string, ownerId: string, n: number, options: { visibility?: "private" | "tenant"; entityType?: "context" | "template" } = {}): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      ids.push((await createEntity(this.db, tenantId, ownerId, { title: `e${i} ${randomUUID().slice(0, 6)}`, visibility: options.visibility ?? "tenant", entityType: options.entityType })).id);
    }
    return ids;
  }

  /** Soft-deletes an entity as content would (the column only: graph reads it). */
  async softDelete(tenantId: string, entityId: string): Promise<void> {
    await withTenant(this.db, { service: "content", tenantId }, (trx) =>
      trx.raw("update entity set deleted_at = now(), purge_time = now() + interval '30 days', row_version = row_version + 1 where tenant_id = ? and id = ?", [tenantId, entityId]),
    );
  }

  call<I extends DescMessage, O extends DescMessage>(
    protocol: Protocol,
    method: DescMethodUnary<I, O>,
    request: MessageInitShape<I>,
    bearer?: string,
  ): Promise<Outcome<MessageShape<O>>> {
    return unaryCall(GraphService, this.graph, protocol, method, request, bearer === undefined ? {} : { authorization: `Bearer ${bearer}` });
  }

  /** One unary ContentService call (needs `withContent`). */
  callContent<I extends DescMessage, O extends DescMessage>(protocol: Protocol, method: DescMethodUnary<I, O>, request: MessageInitShape<I>, bearer: string): Promise<Outcome<MessageShape<O>>> {
    return unaryCall(ContentService, this.content!, protocol, method, request, { authorization: `Bearer ${bearer}` });
  }
}
