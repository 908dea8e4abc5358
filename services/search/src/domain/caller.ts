import type { TenantScope } from "@promptcraft/db";
import { apiKeyIdOf, NotFoundError, principalName, type CallerContext } from "@promptcraft/platform";

/** The caller of a search call (the platform's `callerOf`). */
export type Caller = CallerContext;

/** The caller's name as content shows principals: a user UUID, or `api_key:<uuid>`. */
export function callerName(caller: Caller): string {
  return principalName(caller.userId, apiKeyIdOf(caller));
}

/** The tenant scope of the caller's database work, stopped with the call. */
export function scopeOf(caller: Caller): TenantScope {
  return { service: "search", tenantId: caller.tenantId, userId: caller.userId ?? null, signal: caller.signal };
}

/** NOT_FOUND for an entity that does not exist or that the caller may not see (content's answer: the same error). */
export function entityNotFound(): NotFoundError {
  return new NotFoundError("entity not found", { metadata: { resource_type: "entity" } });
}
