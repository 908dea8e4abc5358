import { randomUUID } from "node:crypto";
import type { DescMethodUnary, DescMessage, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { loadConfig, startService, type RunningService, type StartOptions } from "@promptcraft/platform";
import { identityService, issueAccessToken, type KeyRing } from "@promptcraft/identity";
import { contentService } from "@promptcraft/content";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { IdentityService } from "@promptcraft/proto/promptcraft/identity/v1/identity_service_pb";
import { Role } from "@promptcraft/proto/promptcraft/identity/v1/resources_pb";
import { createTenant, createUser, type UserRole } from "@promptcraft/testing";
import { testServiceEnv } from "./identity-e2e-helpers.js";
import { ok, unaryCall, type Outcome, type Protocol } from "./rpc-outcomes.js";

export { badFields, failure, ok, PROTOCOLS, type Outcome, type Protocol } from "./rpc-outcomes.js";

/**
 * Shared harness of the content e2e tests: an identity service (it publishes the JWK Set that
 * verifies access tokens, and issues them) and a content service, both on free ports, on the test
 * database. Calls go over gRPC (plain grpc-js) or Connect and come back as an {@link Outcome}.
 */

/** A user of a test tenant with an access token. */
export interface TestUser {
  id: string;
  role: UserRole;
  token: string;
}

/** An audit event as the tests read it back. */
export interface EventRow {
  event_type: string;
  aggregate_type: string;
  aggregate_id: string | null;
  aggregate_version: string | null;
  actor_type: string;
  actor_id: string | null;
  request_id: string | null;
  payload: Record<string, unknown>;
}

export class ContentHarness {
  identity!: RunningService;
  content!: RunningService;
  keys!: KeyRing;

  /**
   * Starts both services; `contentEnv` overrides content's configuration (e.g.
   * SOFT_DELETE_RETENTION_DAYS), `options` what each is started with (a logger, a span exporter).
   */
  async start(contentEnv: Record<string, string> = {}, options: { identity?: StartOptions; content?: StartOptions } = {}): Promise<void> {
    const base = testServiceEnv();
    this.identity = await startService(identityService, loadConfig(identityService.config, base), options.identity);
    this.keys = this.identity.state as KeyRing;
    this.content = await startService(contentService, this.contentConfig(contentEnv), options.content);
  }

  /** Stops content and starts it again with `contentEnv` overriding its configuration (e.g. a peer's URL known only now). */
  async restartContent(contentEnv: Record<string, string>): Promise<void> {
    await this.content.close();
    this.content = await startService(contentService, this.contentConfig(contentEnv));
  }

  private contentConfig(contentEnv: Record<string, string>) {
    return loadConfig(contentService.config, { ...testServiceEnv(), DB_POOL_MAX: "8", IDENTITY_URL: `http://127.0.0.1:${this.identity.grpcPort}`, ...contentEnv });
  }

  async close(): Promise<void> {
    await this.content?.close();
    await this.identity?.close();
  }

  /** The test database (superuser connection of the identity service's pool). */
  get db() {
    return this.identity.deps.db;
  }

  /** An access token for a user (as the login flow would issue it). */
  async token(tenantId: string, userId: string, role: UserRole): Promise<string> {
    const issued = await issueAccessToken(this.keys, { issuer: "promptcraft-identity", ttlS: 900 }, { tenantId, userId, role, sessionId: randomUUID() });
    return issued.token;
  }

  /** A fresh tenant with one user per given role (in that order) and their tokens. */
  async tenantWith(roles: UserRole[], quotas?: Record<string, unknown>): Promise<{ tenantId: string; users: TestUser[] }> {
    const tenantId = await createTenant(this.db, quotas ? { quotas } : {});
    const users: TestUser[] = [];
    for (const role of roles) users.push(await this.addUser(tenantId, role));
    return { tenantId, users };
  }

  /** Another user of an existing tenant. */
  async addUser(tenantId: string, role: UserRole): Promise<TestUser> {
    const id = await createUser(this.db, tenantId, role);
    return { id, role, token: await this.token(tenantId, id, role) };
  }

  /** One unary ContentService call over gRPC or Connect with a bearer token (and extra headers, e.g. `x-request-id`). */
  call<I extends DescMessage, O extends DescMessage>(
    protocol: Protocol,
    method: DescMethodUnary<I, O>,
    request: MessageInitShape<I>,
    bearer?: string,
    extraHeaders: Record<string, string> = {},
  ): Promise<Outcome<MessageShape<O>>> {
    const headers = { ...extraHeaders, ...(bearer === undefined ? {} : { authorization: `Bearer ${bearer}` }) };
    return unaryCall(ContentService, this.content, protocol, method, request, headers);
  }

  /** The secret of a new API key of the tenant with `role` (acting for no user), created by an admin through identity. */
  async apiKey(adminToken: string, role: UserRole): Promise<string> {
    return (await this.newApiKey(adminToken, role)).secret;
  }

  /** A new API key of the tenant with `role`: its id and secret. */
  newApiKey(adminToken: string, role: UserRole): Promise<{ id: string; secret: string }> {
    return newApiKey(this.identity, adminToken, role);
  }

  /** The audit events of a tenant, oldest first (superuser connection: row-level security does not apply). */
  async events(tenantId: string, aggregateId?: string): Promise<EventRow[]> {
    const { rows } = await this.db.raw<{ rows: EventRow[] }>(
      `select event_type, aggregate_type, aggregate_id, aggregate_version::text as aggregate_version, actor_type, actor_id, request_id, payload
       from event where tenant_id = ?${aggregateId ? " and aggregate_id = ?" : ""} order by id`,
      aggregateId ? [tenantId, aggregateId] : [tenantId],
    );
    return rows;
  }
}

/** A new API key (id and secret) with `role`, created through `identity` by the tenant admin holding `adminToken`. */
export async function newApiKey(identity: { grpcPort: number; connectPort: number }, adminToken: string, role: UserRole): Promise<{ id: string; secret: string }> {
  const roles: Record<UserRole, Role> = { owner: Role.OWNER, admin: Role.ADMIN, editor: Role.EDITOR, viewer: Role.VIEWER };
  const created = ok(
    await unaryCall(IdentityService, identity, "grpc", IdentityService.method.createApiKey, {
      apiKey: { displayName: `key-${randomUUID().slice(0, 8)}`, role: roles[role] },
    }, { authorization: `Bearer ${adminToken}` }),
  );
  return { id: created.apiKey!.id, secret: created.secret };
}

export const NOT_FOUND = { code: "NOT_FOUND", reason: "RESOURCE_NOT_FOUND" };
export const DENIED = { code: "PERMISSION_DENIED", reason: "PERMISSION_INSUFFICIENT" };
export const ETAG_MISMATCH = { code: "ABORTED", reason: "ETAG_MISMATCH" };
