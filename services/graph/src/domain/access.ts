import { NotFoundError, PermissionDeniedError, type AuthContext } from "@promptcraft/platform";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";

/**
 * Access in graph is content's rule, the platform's `entityPermissionRankSql` inside graph's queries
 * (store/relationships.ts `permissionRankSql`; why in docs/decisions.md): a relationship or node
 * exists for a caller only when the caller may view the entities involved; changing a
 * relationship needs edit on its source. This module names the caller and what a rank means.
 */

/** The caller: a user, or an API key acting for no user, with the call's abort signal. */
export type Caller = Pick<AuthContext, "tenantId" | "userId" | "role"> & Partial<Pick<AuthContext, "kind" | "credentialId">> & { readonly signal?: AbortSignal };


/** Ranks of content's rule. */
export const VIEW = 1;
export const EDIT = 2;

/** NOT_FOUND for an entity that does not exist or that the caller may not view: the same error. `field` says which one. */
export function entityNotFound(field: string): NotFoundError {
  return new NotFoundError(`${field}: entity not found`, { metadata: { resource_type: "entity", field } });
}

/** NOT_FOUND for a relationship that does not exist or one of whose ends the caller may not view. */
export function relationshipNotFound(): NotFoundError {
  return new NotFoundError("relationship not found", { metadata: { resource_type: "relationship" } });
}

/** PERMISSION_DENIED: changing relationships of an entity needs edit on it. */
export function editDenied(): PermissionDeniedError {
  return new PermissionDeniedError("changing the relationships of an entity needs edit permission on it (the source)", {
    reason: ErrorReason.PERMISSION_INSUFFICIENT,
    metadata: { required_permission: "edit" },
  });
}
