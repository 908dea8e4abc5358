import type { ServiceName, TenantScope } from "@promptcraft/db";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import type { AuthContext, CallContext } from "./context.js";
import { PermissionDeniedError, UnauthenticatedError } from "./errors.js";

/** Tenant roles, strongest first (brief §6). */
export type Role = AuthContext["role"];

const RANK: Record<Role, number> = { owner: 4, admin: 3, editor: 2, viewer: 1 };

/** Whether `role` is at least `minimum` (owner ⊇ admin ⊇ editor ⊇ viewer). */
export function roleAtLeast(role: Role, minimum: Role): boolean {
  return RANK[role] >= RANK[minimum];
}

/**
 * The caller of one call: who (the verified credentials) and the call's abort signal, which the
 * tenant scopes built from it pass to withTenant, so that the call's database work stops when the
 * client cancels, the deadline passes or the server is forced down.
 */
export type CallerContext = AuthContext & { readonly signal: AbortSignal };

/** The verified caller of a non-public method (with the call's signal); UNAUTHENTICATED if there is none. */
export function callerOf(ctx: CallContext): CallerContext {
  const auth = ctx.auth;
  if (!auth) throw new UnauthenticatedError("missing credentials", { reason: ErrorReason.CREDENTIALS_MISSING });
  // A new object per call: the AuthContext is cached across calls. The signal is made on first use
  // (a transport makes it lazily), i.e. only by calls that reach the database.
  return {
    ...auth,
    get signal() {
      return ctx.signal;
    },
  };
}

/** The caller, who must hold at least `minimum` in their tenant; else PERMISSION_DENIED. */
export function requireRole(ctx: CallContext, minimum: Role): CallerContext {
  return requireCallerRole(callerOf(ctx), minimum);
}

/**
 * `caller`, if it holds at least `minimum` in its tenant; else PERMISSION_DENIED
 * (PERMISSION_INSUFFICIENT, `required_role`). The domain's form of {@link requireRole}.
 */
export function requireCallerRole<C extends { role: Role }>(caller: C, minimum: Role): C {
  if (!roleAtLeast(caller.role, minimum)) {
    throw new PermissionDeniedError(`this needs the ${minimum} role or higher`, {
      reason: ErrorReason.PERMISSION_INSUFFICIENT,
      metadata: { required_role: minimum },
    });
  }
  return caller;
}

/** The tenant-scoped transaction settings for the caller, stopped by the call's signal (`withTenant(db, tenantScope(ctx, "content"), …)`). */
export function tenantScope(ctx: CallContext, service: ServiceName): TenantScope {
  const caller = callerOf(ctx);
  return { service, tenantId: caller.tenantId, userId: caller.userId ?? null, signal: ctx.signal };
}

/**
 * Who acts, as the audit log records it (`event.actor_type`, `actor_id`, `request_id`), one shape
 * for every service: a user (their id), an API key (the key's id), another service, or the system
 * (jobs, the platform administrator; no id).
 */
export interface Actor {
  actorType: "user" | "api_key" | "service" | "system";
  actorId: string | null;
  requestId: string;
}

/** The actor of an authenticated call: the user of an access token, the API key (by its id), or a service (no id). */
export function actorOf(ctx: CallContext): Actor {
  const caller = callerOf(ctx);
  if (caller.kind === "service") return { actorType: "service", actorId: null, requestId: ctx.requestId };
  return {
    actorType: caller.kind === "api_key" ? "api_key" : "user",
    actorId: caller.kind === "api_key" ? (caller.credentialId ?? null) : (caller.userId ?? null),
    requestId: ctx.requestId,
  };
}

/** The actor of what the platform itself does for a call (a platform-admin call, a job): `system`, no id. */
export function systemActor(requestId: string): Actor {
  return { actorType: "system", actorId: null, requestId };
}
