import type { MessageInitShape } from "@bufbuild/protobuf";
import { actorOf, callerOf, invertEnumMap, timestampFromDb, type ServiceDeps, type ServiceHandlers } from "@promptcraft/platform";
import type { AuthService } from "@promptcraft/proto/promptcraft/identity/v1/auth_service_pb";
import type { IdentityService } from "@promptcraft/proto/promptcraft/identity/v1/identity_service_pb";
import { Role, type LinkedIdentitySchema, type OidcProvider, type OidcProviderSchema } from "@promptcraft/proto/promptcraft/identity/v1/resources_pb";
import type { IdentityConfig } from "../config.js";
import type { OidcClient } from "../domain/oidc-client.js";
import { completeLogin, startLogin } from "../domain/oidc-login.js";
import * as providers from "../domain/oidc-providers.js";
import type { KeyRing } from "../domain/signing-keys.js";
import type { JitRole } from "../store/oidc.js";
import { clientOf, sessionSettings, tokensToProto } from "./sessions.js";
import { userToProto } from "./users.js";

const JIT_ROLE_TO_PROTO: Record<JitRole, Role> = { admin: Role.ADMIN, editor: Role.EDITOR, viewer: Role.VIEWER };
const JIT_ROLE_FROM_PROTO = invertEnumMap(JIT_ROLE_TO_PROTO);

/** A provider row as the contract's OidcProvider: never the client secret, only whether one is stored. */
function providerToProto(row: providers.OidcProviderRow): MessageInitShape<typeof OidcProviderSchema> {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    displayName: row.display_name,
    issuerUri: row.issuer,
    clientId: row.client_id,
    hasClientSecret: row.client_secret !== null,
    scopes: row.scopes,
    allowedEmailDomains: row.allowed_email_domains,
    jitProvisioningEnabled: row.jit_enabled,
    jitDefaultRole: JIT_ROLE_TO_PROTO[row.jit_role],
    enabled: row.enabled,
    createTime: timestampFromDb(row.created_at),
    updateTime: timestampFromDb(row.updated_at),
    etag: row.row_version,
  };
}

function identityToProto(row: providers.LinkedIdentityRow): MessageInitShape<typeof LinkedIdentitySchema> {
  return {
    id: row.id,
    userId: row.user_id,
    providerId: row.provider_id,
    issuer: row.issuer,
    subject: row.subject,
    email: row.email ?? "",
    createTime: timestampFromDb(row.created_at),
    lastLoginTime: row.last_login_at ? timestampFromDb(row.last_login_at) : undefined,
  };
}

/** Every configurable field of a provider message (ROLE_UNSPECIFIED means viewer, as the contract says). */
function providerInput(p: OidcProvider): providers.ProviderInput {
  return {
    displayName: p.displayName,
    issuer: p.issuerUri,
    clientId: p.clientId,
    clientSecret: p.clientSecret,
    scopes: p.scopes,
    allowedEmailDomains: p.allowedEmailDomains,
    jitEnabled: p.jitProvisioningEnabled,
    jitRole: JIT_ROLE_FROM_PROTO[p.jitDefaultRole] ?? "viewer",
    enabled: p.enabled,
  };
}

/** Update-mask paths → the input fields they name (`*` is all of them). */
const MASK_FIELDS: Record<string, keyof providers.ProviderInput> = {
  display_name: "displayName",
  issuer_uri: "issuer",
  client_id: "clientId",
  client_secret: "clientSecret",
  scopes: "scopes",
  allowed_email_domains: "allowedEmailDomains",
  jit_provisioning_enabled: "jitEnabled",
  jit_default_role: "jitRole",
  enabled: "enabled",
};

/** IdentityService: OIDC providers (admin) and linked identities (the user themself or an admin). */
export function oidcIdentityHandlers(deps: ServiceDeps<IdentityConfig>, keys: KeyRing, oidc: OidcClient): ServiceHandlers<typeof IdentityService> {
  const db = deps.db;
  return {
    createOidcProvider: async (request, ctx) =>
      providerToProto(await providers.createProvider(db, oidc, keys.kek, callerOf(ctx), providerInput(request.oidcProvider!), request.requestId, actorOf(ctx))),
    getOidcProvider: async (request, ctx) => providerToProto(await providers.getProvider(db, callerOf(ctx), request.oidcProviderId.toLowerCase())),
    listOidcProviders: async (request, ctx) => {
      const page = await providers.listProviders(db, callerOf(ctx), { pageSize: request.pageSize, pageToken: request.pageToken });
      return { oidcProviders: page.providers.map(providerToProto), nextPageToken: page.nextPageToken };
    },
    updateOidcProvider: async (request, ctx) => {
      const p = request.oidcProvider!;
      const all = providerInput(p);
      const paths = new Set((request.updateMask?.paths ?? []).flatMap((path) => (path === "*" ? Object.keys(MASK_FIELDS) : [path])));
      const changes: Partial<providers.ProviderInput> = {};
      for (const path of paths) {
        const field = MASK_FIELDS[path]!;
        (changes as Record<string, unknown>)[field] = all[field];
      }
      return providerToProto(await providers.updateProvider(db, oidc, keys.kek, callerOf(ctx), p.id.toLowerCase(), p.etag, changes, actorOf(ctx)));
    },
    deleteOidcProvider: async (request, ctx) => {
      await providers.deleteProvider(db, callerOf(ctx), request.oidcProviderId.toLowerCase(), request.etag, actorOf(ctx));
      return {};
    },
    listLinkedIdentities: async (request, ctx) => {
      const page = await providers.listLinkedIdentities(db, callerOf(ctx), { userId: request.userId, pageSize: request.pageSize, pageToken: request.pageToken });
      return { linkedIdentities: page.identities.map(identityToProto), nextPageToken: page.nextPageToken };
    },
    deleteLinkedIdentity: async (request, ctx) => {
      await providers.deleteLinkedIdentity(db, callerOf(ctx), request.linkedIdentityId.toLowerCase(), actorOf(ctx));
      return {};
    },
  };
}

/** AuthService: StartOidcLogin and CompleteOidcLogin (public: the login flow itself authenticates). */
export function oidcAuthHandlers(deps: ServiceDeps<IdentityConfig>, keys: KeyRing, oidc: OidcClient): ServiceHandlers<typeof AuthService> {
  const { db } = deps;
  const settings = sessionSettings(deps.config, keys);
  return {
    startOidcLogin: async (request) => {
      const started = await startLogin(db, oidc, keys.kek, {
        tenantSlug: request.tenantSlug,
        providerId: request.oidcProviderId.toLowerCase(),
        redirectUri: request.redirectUri,
        loginHint: request.loginHint,
      });
      return { authorizationUrl: started.authorizationUrl, state: started.state, expireTime: timestampFromDb(started.expiresAt) };
    },
    completeOidcLogin: async (request, ctx) => {
      const done = await completeLogin(db, oidc, keys.kek, settings, { state: request.state, code: request.code, redirectUri: request.redirectUri }, clientOf(ctx));
      return {
        tokens: tokensToProto(done.tokens),
        user: userToProto({ user: done.user, purgeTime: undefined }),
        userCreated: done.userCreated,
        linkedIdentity: identityToProto(done.identity),
      };
    },
  };
}
