import { randomUUID } from "node:crypto";
import type { DescMethodUnary, DescMessage, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { analyticsService } from "@promptcraft/analytics";
import { contentService } from "@promptcraft/content";
import { identityService, issueAccessToken, type KeyRing } from "@promptcraft/identity";
import { loadConfig, startService, type RunningService } from "@promptcraft/platform";
import { AnalyticsService } from "@promptcraft/proto/promptcraft/analytics/v1/analytics_service_pb";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { UsageKind, type UsageEventSchema } from "@promptcraft/proto/promptcraft/analytics/v1/resources_pb";
import { createTenant, createUser, type UserRole } from "@promptcraft/testing";
import { testServiceEnv } from "./identity-e2e-helpers.js";
import { unaryCall, type Outcome, type Protocol } from "./rpc-outcomes.js";

/** The service credential of the analytics e2e tests (≥ 32 characters). */
export const TEST_SERVICE_TOKEN = "test-service-token-0123456789abcdef";

/**
 * Harness of the analytics e2e tests: identity (JWKS, API keys) and analytics on free ports, on the
 * test database, analytics accepting {@link TEST_SERVICE_TOKEN}.
 */
export class AnalyticsHarness {
  identity!: RunningService;
  analytics!: RunningService;
  keys!: KeyRing;

  async start(analyticsEnv: Record<string, string> = {}): Promise<void> {
    const base = testServiceEnv();
    this.identity = await startService(identityService, loadConfig(identityService.config, base));
    this.keys = this.identity.state as KeyRing;
    this.analytics = await startService(
      analyticsService,
      loadConfig(analyticsService.config, { ...base, SERVICE_TOKEN: TEST_SERVICE_TOKEN, IDENTITY_URL: `http://127.0.0.1:${this.identity.grpcPort}`, ...analyticsEnv }),
    );
  }

  async close(): Promise<void> {
    await this.analytics?.close();
    await this.identity?.close();
  }

  /** The test database (superuser: row-level security does not apply). */
  get db() {
    return this.identity.deps.db;
  }

  async token(tenantId: string, userId: string, role: UserRole): Promise<string> {
    return (await issueAccessToken(this.keys, { issuer: "promptcraft-identity", ttlS: 900 }, { tenantId, userId, role, sessionId: randomUUID() })).token;
  }

  /** A fresh tenant and a user of it with `role`, with a token. */
  async member(role: UserRole = "editor", tenantId?: string): Promise<{ tenantId: string; userId: string; token: string }> {
    const tenant = tenantId ?? (await createTenant(this.db));
    const userId = await createUser(this.db, tenant, role);
    return { tenantId: tenant, userId, token: await this.token(tenant, userId, role) };
  }

  /** One unary AnalyticsService call (plain grpc-js for grpc, connect-es for connect). */
  call<I extends DescMessage, O extends DescMessage>(
    protocol: Protocol,
    method: DescMethodUnary<I, O>,
    request: MessageInitShape<I>,
    bearer?: string,
    headers: Record<string, string> = {},
  ): Promise<Outcome<MessageShape<O>>> {
    return unaryCall(AnalyticsService, this.analytics, protocol, method, request, { ...headers, ...(bearer === undefined ? {} : { authorization: `Bearer ${bearer}` }) });
  }

  /**
   * A connect-es client over HTTP/2 — gRPC to the gRPC port, or Connect (h2c) to the Connect port —
   * for client streaming, which Connect over HTTP/1.1 cannot carry.
   */
  streamingClient(protocol: Protocol): Client<typeof AnalyticsService> {
    const transport =
      protocol === "grpc"
        ? createGrpcTransport({ baseUrl: `http://127.0.0.1:${this.analytics.grpcPort}` })
        : createConnectTransport({ baseUrl: `http://127.0.0.1:${this.analytics.connectPort}`, httpVersion: "2" });
    return createClient(AnalyticsService, transport);
  }

  /** How many usage events of `tenantId` are stored (all, or those with these ids). */
  async stored(tenantId: string, ids?: string[]): Promise<number> {
    const { rows } = await this.db.raw<{ rows: { n: number }[] }>(
      `select count(*)::int as n from usage_event where tenant_id = ?${ids ? " and id = any(?::uuid[])" : ""}`,
      ids ? [tenantId, ids] : [tenantId],
    );
    return rows[0]!.n;
  }
}

/** A valid usage event (a render now), with overrides. */
export function usageEvent(overrides: Omit<MessageInitShape<typeof UsageEventSchema>, "$typeName"> = {}): MessageInitShape<typeof UsageEventSchema> & { id: string } {
  return { id: randomUUID(), kind: UsageKind.RENDER, occurTime: timestampFromDate(new Date()), entityId: randomUUID(), entityVersion: 2, label: "production", ...overrides };
}

/** The analytics harness with a content service between identity and analytics. */
export class StatsHarness extends AnalyticsHarness {
  content!: RunningService;

  override async start(analyticsEnv: Record<string, string> = {}): Promise<void> {
    const base = testServiceEnv();
    this.identity = await startService(identityService, loadConfig(identityService.config, base));
    this.keys = this.identity.state as KeyRing;
    const identityUrl = `http://127.0.0.1:${this.identity.grpcPort}`;
    this.content = await startService(contentService, loadConfig(contentService.config, { ...base, IDENTITY_URL: identityUrl }));
    this.analytics = await startService(
      analyticsService,
      loadConfig(analyticsService.config, {
        ...base,
        SERVICE_TOKEN: TEST_SERVICE_TOKEN,
        IDENTITY_URL: identityUrl,
        CONTENT_URL: `http://127.0.0.1:${this.content.grpcPort}`,
        ...analyticsEnv,
      }),
    );
  }

  override async close(): Promise<void> {
    await this.analytics?.close();
    await this.content?.close();
    await this.identity?.close();
  }

  /** One unary ContentService call with a bearer token. */
  contentCall<I extends DescMessage, O extends DescMessage>(protocol: Protocol, method: DescMethodUnary<I, O>, request: MessageInitShape<I>, token: string) {
    return unaryCall(ContentService, this.content, protocol, method, request, { authorization: `Bearer ${token}` });
  }
}
