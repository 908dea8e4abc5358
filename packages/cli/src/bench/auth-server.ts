// The measured server of the auth benchmark: the platform with a trivial handler on a real
// contract method (IdentityService.GetTenant answers a constant), with the access-token verifier
// in the pipeline (`auth`) or without it (`open`). Prints its port and a valid token.
import { accessTokenAuthenticator, createLogger, serve, startServer, TokenVerifier } from "@promptcraft/platform";
import { IdentityService } from "@promptcraft/proto/promptcraft/identity/v1/identity_service_pb";
import { SignJWT, type JWK } from "jose";
import { generateKeyPairSync, randomUUID } from "node:crypto";

const mode = process.argv[2] === "auth" ? "auth" : "open";
const ISSUER = "promptcraft-bench";
const { privateKey, publicKey } = generateKeyPairSync("ed25519");
const jwk: JWK = { ...(publicKey.export({ format: "jwk" }) as JWK), kid: "bench", alg: "EdDSA", use: "sig" };
const now = Math.floor(Date.now() / 1000);
const token = await new SignJWT({ tid: randomUUID(), role: "viewer", sid: "bench", jti: randomUUID() })
  .setProtectedHeader({ alg: "EdDSA", kid: "bench", typ: "at+jwt" })
  .setIssuer(ISSUER)
  .setAudience("promptcraft")
  .setSubject(randomUUID())
  .setIssuedAt(now)
  .setNotBefore(now)
  .setExpirationTime(now + 900)
  .sign(privateKey);

const verifier = new TokenVerifier({ fetchJwks: async () => [jwk], issuer: ISSUER });
const server = await startServer({
  name: "bench-auth",
  host: "127.0.0.1",
  grpcPort: 0,
  connectPort: 0,
  services: [serve(IdentityService, { getTenant: async () => ({ slug: "bench" }) })],
  log: createLogger("bench-auth", process.env.LOG_LEVEL ?? "info"),
  ...(mode === "auth" ? { authenticate: accessTokenAuthenticator(verifier) } : {}),
});
process.stdout.write(`TOKEN ${token}\nPORTS ${server.grpcPort} ${server.connectPort}\n`);
process.on("SIGTERM", () => void server.close().then(() => process.exit(0)));
