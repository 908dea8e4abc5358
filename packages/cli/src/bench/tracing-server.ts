// The measured server of the tracing benchmark: the auth benchmark's server (GetTenant answering a
// constant behind access-token verification), with tracing off, or on and exporting over OTLP/HTTP
// to the endpoint given as the second argument. Prints its port and a valid token.
import { accessTokenAuthenticator, createLogger, serve, startServer, startTracing, TokenVerifier } from "@promptcraft/platform";
import { IdentityService } from "@promptcraft/proto/promptcraft/identity/v1/identity_service_pb";
import { SignJWT, type JWK } from "jose";
import { generateKeyPairSync, randomUUID } from "node:crypto";

const endpoint = process.argv[2] === "on" ? process.argv[3] : undefined;
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

const log = createLogger("bench-tracing", process.env.LOG_LEVEL ?? "info");
const tracing = startTracing({
  config: {
    OTEL_SDK_DISABLED: false,
    OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
    OTEL_EXPORTER_OTLP_HEADERS: {},
    OTEL_RESOURCE_ATTRIBUTES: {},
    OTEL_TRACES_SAMPLER: "parentbased_always_on",
  },
  service: "bench",
  log,
});
const verifier = new TokenVerifier({ fetchJwks: async () => [jwk], issuer: ISSUER });
const server = await startServer({
  name: "bench-tracing",
  host: "127.0.0.1",
  grpcPort: 0,
  connectPort: 0,
  services: [serve(IdentityService, { getTenant: async () => ({ slug: "bench" }) })],
  log,
  authenticate: accessTokenAuthenticator(verifier),
  tracer: tracing.tracer,
});
process.stdout.write(`TOKEN ${token}\nPORTS ${server.grpcPort} ${server.connectPort}\n`);
process.on("SIGTERM", () => void server.close().then(() => tracing.shutdown(2000)).then(() => process.exit(0)));
