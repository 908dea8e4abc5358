import { invertEnumMap, type Role as RoleName } from "@promptcraft/platform";
import { Role } from "@promptcraft/proto/promptcraft/identity/v1/resources_pb";

/** Tenant roles between our names and the contract: one map, both directions (users, API keys, introspection, OIDC JIT). */
export const ROLE_TO_PROTO: Record<RoleName, Role> = { owner: Role.OWNER, admin: Role.ADMIN, editor: Role.EDITOR, viewer: Role.VIEWER };
export const ROLE_FROM_PROTO = invertEnumMap(ROLE_TO_PROTO);
