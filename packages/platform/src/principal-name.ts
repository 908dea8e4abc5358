/**
 * How the API names a principal in fields that hold "who" (owner, author, creator, actor, granter):
 * a user's UUID, or `api_key:<uuid>` for an API key acting as itself (docs/decisions.md, "API keys
 * write content as themselves"). One place for the convention every service shows.
 */

import type { AuthContext } from "./context.js";

/** Prefix of an API key's principal name. */
export const API_KEY_PRINCIPAL_PREFIX = "api_key:";

/** A user or an API key, by id. */
export type NamedPrincipal = { kind: "user"; id: string } | { kind: "api_key"; id: string };

/** The id of the caller's API key when the caller is a key acting for no user (it owns what it creates, like a user); else null. */
export function apiKeyIdOf(caller: Pick<AuthContext, "userId"> & Partial<Pick<AuthContext, "kind" | "credentialId">>): string | null {
  return caller.userId === undefined && caller.kind === "api_key" && caller.credentialId ? caller.credentialId : null;
}

/** The principal as the API shows it: the user's UUID, else `api_key:<uuid>`; empty when neither is recorded. */
export function principalName(userId: string | null | undefined, apiKeyId: string | null | undefined): string {
  if (userId) return userId;
  return apiKeyId ? `${API_KEY_PRINCIPAL_PREFIX}${apiKeyId}` : "";
}

/** The principal a name denotes (`<uuid>` or `api_key:<uuid>`, already validated by the contract), ids lowercased. */
export function principalFromName(name: string): NamedPrincipal {
  return name.startsWith(API_KEY_PRINCIPAL_PREFIX)
    ? { kind: "api_key", id: name.slice(API_KEY_PRINCIPAL_PREFIX.length).toLowerCase() }
    : { kind: "user", id: name.toLowerCase() };
}
