import { test } from "vitest";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { authorizationUrl, discoveryProblem, discoveryUrl, idTokenAlgorithms, isAcceptableProviderUrl, pkcePair, tokenEndpointAuthMethod } from "./oidc-client.js";
import { domainAllowed, emailDomain } from "./oidc-login.js";

const ISSUER = "https://idp.example.test/tenant-1";
const DOC = {
  issuer: ISSUER,
  authorization_endpoint: "https://idp.example.test/authorize",
  token_endpoint: "https://idp.example.test/token",
  jwks_uri: "https://idp.example.test/jwks",
};

test("provider URLs: HTTPS, or HTTP on loopback only; no credentials or fragment", () => {
  assert.equal(isAcceptableProviderUrl("https://accounts.example.test"), true);
  assert.equal(isAcceptableProviderUrl("http://localhost:8080"), true);
  assert.equal(isAcceptableProviderUrl("http://127.0.0.1:8080/realms/x"), true);
  assert.equal(isAcceptableProviderUrl("http://[::1]:8080"), true);
  assert.equal(isAcceptableProviderUrl("http://idp.example.test"), false);
  assert.equal(isAcceptableProviderUrl("https://user:pw@idp.example.test"), false);
  assert.equal(isAcceptableProviderUrl("https://idp.example.test/#x"), false);
  assert.equal(isAcceptableProviderUrl("ftp://idp.example.test"), false);
  assert.equal(discoveryUrl("https://idp.example.test/tenant-1/"), "https://idp.example.test/tenant-1/.well-known/openid-configuration");
});

test("discovery documents: the issuer must match exactly; endpoints, PKCE S256 and an asymmetric algorithm are required", () => {
  assert.equal(discoveryProblem(ISSUER, DOC), undefined);
  assert.match(discoveryProblem(ISSUER, { ...DOC, issuer: `${ISSUER}/` }) ?? "", /names issuer/);
  assert.match(discoveryProblem(ISSUER, { ...DOC, token_endpoint: "http://idp.example.test/token" }) ?? "", /token_endpoint/);
  assert.match(discoveryProblem(ISSUER, { ...DOC, code_challenge_methods_supported: ["plain"] }) ?? "", /S256/);
  assert.match(discoveryProblem(ISSUER, { ...DOC, id_token_signing_alg_values_supported: ["HS256", "none"] }) ?? "", /algorithm/);
  assert.match(discoveryProblem(ISSUER, "not json object") ?? "", /JSON object/);
  assert.deepEqual(idTokenAlgorithms({ ...DOC, id_token_signing_alg_values_supported: ["none", "HS256", "ES256", "RS256"] }), ["ES256", "RS256"]);
  assert.deepEqual(idTokenAlgorithms(DOC), ["RS256"]);
});

test("token endpoint authentication: Basic by default, POST when only that is offered, none without a secret", () => {
  assert.equal(tokenEndpointAuthMethod(undefined, true), "client_secret_basic");
  assert.equal(tokenEndpointAuthMethod(["client_secret_post", "client_secret_basic"], true), "client_secret_basic");
  assert.equal(tokenEndpointAuthMethod(["client_secret_post"], true), "client_secret_post");
  assert.equal(tokenEndpointAuthMethod(["none"], true), "none");
  assert.equal(tokenEndpointAuthMethod(["client_secret_basic"], false), "none");
});

test("the authorization URL carries the code flow, PKCE S256, state, nonce and openid once", () => {
  const pkce = pkcePair();
  assert.equal(createHash("sha256").update(pkce.verifier).digest("base64url"), pkce.challenge);
  assert.equal(pkce.verifier.length, 43);
  const url = new URL(
    authorizationUrl(DOC, { clientId: "c1", redirectUri: "https://app.test/cb", scopes: ["openid", "email"], state: "s".repeat(43), nonce: "n".repeat(43), codeChallenge: pkce.challenge, loginHint: "" }),
  );
  assert.equal(url.origin + url.pathname, DOC.authorization_endpoint);
  const q = Object.fromEntries(url.searchParams);
  assert.deepEqual(q, {
    response_type: "code",
    client_id: "c1",
    redirect_uri: "https://app.test/cb",
    scope: "openid email",
    state: "s".repeat(43),
    nonce: "n".repeat(43),
    code_challenge: pkce.challenge,
    code_challenge_method: "S256",
  });
});

test("email domains compare case-insensitively; an empty list allows any", () => {
  assert.equal(emailDomain("Ann@Corp.Example"), "corp.example");
  assert.equal(domainAllowed(["corp.example"], "ann@CORP.example"), true);
  assert.equal(domainAllowed(["corp.example"], "ann@sub.corp.example"), false);
  assert.equal(domainAllowed([], "ann@anything.test"), true);
});
