import { serve, type HttpRoute, type ServiceDeps, type ServiceRegistration } from "@promptcraft/platform";
import { AuthService } from "@promptcraft/proto/promptcraft/identity/v1/auth_service_pb";
import { IdentityService } from "@promptcraft/proto/promptcraft/identity/v1/identity_service_pb";
import type { IdentityConfig } from "./config.js";
import { OidcClient } from "./domain/oidc-client.js";
import type { KeyRing } from "./domain/signing-keys.js";
import { authHandlers, identityHandlers, JWKS_CACHE_CONTROL, localCredentials } from "./handlers/index.js";

/**
 * AuthService methods callable without an access token. The contract's anonymous methods (log in,
 * accept an invitation, refresh, login options, OIDC, the JWK Set), Logout (a refresh token is
 * credential enough; without one the handler verifies the access token), and RotateSigningKey, which
 * checks the platform-admin credential itself.
 */
export const PUBLIC_AUTH_METHODS = [
  "login",
  "acceptInvitation",
  "refreshToken",
  "logout",
  "getLoginOptions",
  "startOidcLogin",
  "completeOidcLogin",
  "getJwks",
  "rotateSigningKey",
] as const satisfies readonly (keyof (typeof AuthService)["method"])[];

/**
 * IdentityService methods that check the platform-admin credential themselves (the platform's
 * access-token check would refuse that secret before the handler runs). GetTenant and UpdateTenant
 * also serve members: their handlers authenticate anyone but the platform admin as the platform
 * would (`LocalCredentials.authenticate`).
 */
export const PUBLIC_IDENTITY_METHODS = [
  "createTenant",
  "getTenant",
  "listTenants",
  "updateTenant",
  "suspendTenant",
  "resumeTenant",
] as const satisfies readonly (keyof (typeof IdentityService)["method"])[];

/** The RPC services this process serves (health and reflection are added by the platform). */
export function routes(deps: ServiceDeps<IdentityConfig>, keys: KeyRing): ServiceRegistration[] {
  // One OIDC client per process: it caches discovery documents and provider key sets.
  const oidc = new OidcClient();
  // One verifier and one set of credential caches for the methods that check credentials themselves.
  const credentials = localCredentials(deps, keys);
  return [
    serve(IdentityService, identityHandlers(deps, keys, oidc, credentials), { publicMethods: PUBLIC_IDENTITY_METHODS }),
    serve(AuthService, authHandlers(deps, keys, oidc, credentials), { publicMethods: PUBLIC_AUTH_METHODS }),
  ];
}

/** `GET /.well-known/jwks.json` on the Connect port: the same JWK Set as AuthService.GetJwks. */
export function jwksRoute(keys: KeyRing): HttpRoute {
  return (req, res) => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" });
      res.end();
      return;
    }
    keys.publishedJwks().then(
      (jwks) => {
        const body = JSON.stringify({ keys: jwks });
        res.writeHead(200, {
          "content-type": "application/json",
          "cache-control": JWKS_CACHE_CONTROL,
          "content-length": Buffer.byteLength(body),
        });
        if (req.method === "HEAD") res.end();
        else res.end(body);
      },
      () => {
        res.writeHead(503, { "content-type": "text/plain; charset=utf-8", "retry-after": "1" });
        res.end("JWKS unavailable\n");
      },
    );
  };
}
