import { randomUUID } from "node:crypto";
import type { DescMethodUnary, DescMessage, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { loadConfig, startService, type RunningService } from "@promptcraft/platform";
import { identityService, issueAccessToken, type KeyRing } from "@promptcraft/identity";
import { IdentityService } from "@promptcraft/proto/promptcraft/identity/v1/identity_service_pb";
import { createTenant, createUser, type UserRole } from "@promptcraft/testing";
import { withTenant } from "@promptcraft/db";
import { unaryCall, type Outcome, type Protocol } from "./rpc-outcomes.js";

export { badFields, failure, ok, PROTOCOLS, type Outcome, type Protocol } from "./rpc-outcomes.js";

/** Shared harness of the identity tenant and user e2e tests: one identity service on free ports. */

export const ADMIN_TOKEN = "test-platform-admin-token-tenants-users-0123";
/** An audit event as the tests read it back. */
export interface EventRow {
  event_type: string;
  aggregate_id: string | null;
  actor_type: string;
  actor_id: string | null;
  request_id: string | null;
  payload: Record<string, unknown>;
}

/**
 * The settings every e2e service starts with: the test database, free ports, no logs, and the
 * largest per-address allowance of failed logins. Every test reaches its services from 127.0.0.1,
 * and identity's address counter (`login_throttle`, across tenants) lives in the shared database:
 * with the default allowance, the failed logins of all test files (and of earlier runs within the
 * window) would add up until one service blocked 127.0.0.1 for every other file. Accounts are unique
 * per test, so the account throttle stays each test's own (login.e2e tests it with a low allowance).
 * Peers a test does not start are unreachable (port 1 refuses), never the default port of a
 * platform `npm start` may be running on this machine.
 */
export function testServiceEnv(): Record<string, string> {
  const DATABASE_URL = process.env.DATABASE_URL;
  if (!DATABASE_URL) throw new Error("DATABASE_URL is not set: run through `npm test`");
  return { DATABASE_URL, GRPC_PORT: "0", CONNECT_PORT: "0", LOG_LEVEL: "silent", DB_POOL_MAX: "4", LOGIN_THROTTLE_ADDRESS_FAILURES: "100000", GRAPH_URL: "http://127.0.0.1:1", SEARCH_URL: "http://127.0.0.1:1", ANALYTICS_URL: "http://127.0.0.1:1" };
}

/** A Timestamp in microseconds since the epoch (identity returns times to the microsecond). */
export function microsOf(ts: { seconds: bigint; nanos: number }): bigint {
  return ts.seconds * 1_000_000n + BigInt(Math.floor(ts.nanos / 1000));
}

export class IdentityHarness {
  identity!: RunningService;
  keys!: KeyRing;

  /** Starts identity with {@link ADMIN_TOKEN} as the platform-admin credential, plus `env`. */
  async start(env: Record<string, string> = {}): Promise<void> {
    this.identity = await startService(identityService, loadConfig(identityService.config, { ...testServiceEnv(), PLATFORM_ADMIN_TOKEN: ADMIN_TOKEN, ...env }));
    this.keys = this.identity.state as KeyRing;
  }

  /** identity's gRPC URL (the `IDENTITY_URL` of other services). */
  get url(): string {
    return `http://127.0.0.1:${this.identity.grpcPort}`;
  }

  async close(): Promise<void> {
    await this.identity?.close();
  }

  get db() {
    return this.identity.deps.db;
  }

  /** A time column of one row of a tenant table, in microseconds since the epoch (exact: PostgreSQL's numeric epoch). */
  async columnMicros(tenantId: string, table: "app_user" | "api_key" | "tenant", column: string, id: string): Promise<bigint> {
    const { rows } = await withTenant(this.db, { service: "identity", tenantId }, (trx) =>
      trx.raw<{ rows: { micros: string }[] }>(`select (extract(epoch from ${column}) * 1000000)::bigint::text as micros from ${table} where id = ?`, [id]),
    );
    return BigInt(rows[0]!.micros);
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
  call<I extends DescMessage, O extends DescMessage>(
    protocol: Protocol,
    method: DescMethodUnary<I, O>,
    request: MessageInitShape<I>,
    bearer?: string,
    extraHeaders: Record<string, string> = {},
  ): Promise<Outcome<MessageShape<O>>> {
    const headers: Record<string, string> = { ...extraHeaders, ...(bearer === undefined ? {} : { authorization: `Bearer ${bearer}` }) };
    return unaryCall(IdentityService, this.identity, protocol, method, request, headers);
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
