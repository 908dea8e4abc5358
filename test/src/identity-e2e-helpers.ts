import { randomUUID } from "node:crypto";
import type { DescMethodUnary, DescMessage, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { loadConfig, startService, type RunningService } from "@promptcraft/platform";
import { identityService, issueAccessToken, type KeyRing } from "@promptcraft/identity";
import { IdentityService } from "@promptcraft/proto/promptcraft/identity/v1/identity_service_pb";
import { ErrorInfoSchema } from "@promptcraft/proto/google/rpc/error_details_pb";
import { createServiceClient, ConnectError } from "@promptcraft/client";
import { createTenant, createUser, grpc, grpcUnary, type UserRole } from "@promptcraft/testing";

/** Shared harness of the identity tenant and user e2e tests: one identity service on free ports. */

export const ADMIN_TOKEN = "test-platform-admin-token-tenants-users-0123";
export type Protocol = "grpc" | "connect";
export const PROTOCOLS: Protocol[] = ["grpc", "connect"];

export type Outcome<O> = { ok: true; res: O } | { ok: false; code: string; reason: string | undefined; fields: string[] };

/** An audit event as the tests read it back. */
export interface EventRow {
  event_type: string;
  aggregate_id: string | null;
  actor_type: string;
  actor_id: string | null;
  request_id: string | null;
  payload: Record<string, unknown>;
}

export class IdentityHarness {
  identity!: RunningService;
  keys!: KeyRing;

  async start(): Promise<void> {
    const DATABASE_URL = process.env.DATABASE_URL;
    if (!DATABASE_URL) throw new Error("DATABASE_URL is not set: run through `npm test`");
    this.identity = await startService(
      identityService,
      loadConfig(identityService.config, {
        DATABASE_URL,
        GRPC_PORT: "0",
        CONNECT_PORT: "0",
        LOG_LEVEL: "silent",
        DB_POOL_MAX: "4",
        PLATFORM_ADMIN_TOKEN: ADMIN_TOKEN,
      }),
    );
    this.keys = this.identity.state as KeyRing;
  }

  async close(): Promise<void> {
    await this.identity?.close();
  }

  get db() {
    return this.identity.deps.db;
  }

  /** An access token for a user (as the login flow would issue it). */
  async token(tenantId: string, userId: string, role: UserRole): Promise<string> {
    const issued = await issueAccessToken(this.keys, { issuer: "promptcraft-identity", ttlS: 900 }, { tenantId, userId, role, sessionId: randomUUID() });
    return issued.token;
  }

  /** A fresh tenant with one user of each given role, and their tokens. */
  async tenantWith(roles: UserRole[]): Promise<{ tenantId: string; users: { id: string; role: UserRole; token: string }[] }> {
    const tenantId = await createTenant(this.db);
    const users = [];
    for (const role of roles) {
      const id = await createUser(this.db, tenantId, role);
      users.push({ id, role, token: await this.token(tenantId, id, role) });
    }
    return { tenantId, users };
  }

  /** One unary IdentityService call over gRPC (plain grpc-js) or Connect, with a bearer credential. */
  async call<I extends DescMessage, O extends DescMessage>(
    protocol: Protocol,
    method: DescMethodUnary<I, O>,
    request: MessageInitShape<I>,
    bearer?: string,
    extraHeaders: Record<string, string> = {},
  ): Promise<Outcome<MessageShape<O>>> {
    const headers: Record<string, string> = { ...extraHeaders, ...(bearer === undefined ? {} : { authorization: `Bearer ${bearer}` }) };
    if (protocol === "grpc") {
      const result = await grpcUnary(`127.0.0.1:${this.identity.grpcPort}`, method, request, { metadata: headers });
      if ("response" in result) return { ok: true, res: result.response };
      return {
        ok: false,
        code: grpc.status[result.failure.code] ?? String(result.failure.code),
        reason: result.failure.errorInfo?.reason,
        fields: result.failure.badRequest?.fieldViolations.map((v) => v.field) ?? [],
      };
    }
    const client = createServiceClient(IdentityService, `http://127.0.0.1:${this.identity.connectPort}`, { protocol: "connect" });
    const fn = (client as unknown as Record<string, (r: unknown, o: unknown) => Promise<MessageShape<O>>>)[method.localName]!;
    try {
      return { ok: true, res: await fn(request, { headers }) };
    } catch (e) {
      const err = ConnectError.from(e);
      return { ok: false, code: grpc.status[err.code as number] ?? String(err.code), reason: err.findDetails(ErrorInfoSchema)[0]?.reason, fields: [] };
    }
  }

  /** The audit events of a tenant (superuser connection: row-level security does not apply). */
  async events(tenantId: string): Promise<EventRow[]> {
    const { rows } = await this.db.raw<{ rows: EventRow[] }>(
      "select event_type, aggregate_id, actor_type, actor_id, request_id, payload from event where tenant_id = ? order by id",
      [tenantId],
    );
    return rows;
  }
}

/** The outcome's response, or a thrown assertion naming the failure. */
export function ok<O>(outcome: Outcome<O>): O {
  if (!outcome.ok) throw new Error(`expected success, got ${outcome.code} ${outcome.reason ?? ""}`);
  return outcome.res;
}

/** `code` and `reason` of a failed outcome (for deepEqual). */
export function failure<O>(outcome: Outcome<O>): { code: string; reason: string | undefined } {
  if (outcome.ok) return { code: "OK", reason: undefined };
  return { code: outcome.code, reason: outcome.reason };
}
