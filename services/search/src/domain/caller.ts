import type { TenantScope } from "@promptcraft/db";
import { NotFoundError, principalName, type AccessPrincipal, type CallerContext } from "@promptcraft/platform";

/** The caller of a search call (the platform's `callerOf`). */
export type Caller = CallerContext;

/** The caller as content's access rule sees them. */
export function principalOf(caller: Caller): AccessPrincipal {
  const apiKeyId = caller.userId === undefined && caller.kind === "api_key" && caller.credentialId ? caller.credentialId : null;
  return { role: caller.role, userId: caller.userId ?? null, apiKeyId };
}

/** The caller's name as content shows principals: a user UUID, or `api_key:<uuid>`. */
export function callerName(caller: Caller): string {
  const p = principalOf(caller);
  return principalName(p.userId, p.apiKeyId);
}

/** The tenant scope of the caller's database work, stopped with the call. */
export function scopeOf(caller: Caller): TenantScope {
  return { service: "search", tenantId: caller.tenantId, userId: caller.userId ?? null, signal: caller.signal };
}

/** NOT_FOUND for an entity that does not exist or that the caller may not see (content's answer: the same error). */
export function entityNotFound(): NotFoundError {
  return new NotFoundError("entity not found", { metadata: { resource_type: "entity" } });
}
