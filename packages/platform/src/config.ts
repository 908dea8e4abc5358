import { z } from "zod";

/** The standard `OTEL_TRACES_SAMPLER` values the services accept. */
export const TRACES_SAMPLERS = [
  "parentbased_always_on",
  "parentbased_always_off",
  "parentbased_traceidratio",
  "always_on",
  "always_off",
  "traceidratio",
] as const;
export type TracesSampler = (typeof TRACES_SAMPLERS)[number];

/**
 * Settings every service shares. Each service extends this with its own fields and default ports
 * (`serviceConfig`). Config is parsed once at start; nothing else reads `process.env`.
 */
export const baseConfigShape = {
  /** PostgreSQL URL the service connects to (a login role that may `SET ROLE` to the service role). */
  DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/, error: "must be a postgres:// URL" }),
  /** Interface both transports bind to; containers set 0.0.0.0. */
  HOST: z.string().min(1).default("127.0.0.1"),
  /** pino level: fatal, error, warn, info, debug, trace, silent. */
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  /** Largest database pool; the embedded engine serialises connections, so small is fine there. */
  DB_POOL_MAX: z.coerce.number().int().min(1).max(200).default(10),
  /**
   * Longest a call waits for a pooled database connection (or for a new one to connect). While the
   * database is unreachable, calls fail UNAVAILABLE after at most this long instead of knex's 60 s.
   */
  DB_ACQUIRE_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(5000),
  /**
   * How often readiness probes the database (`select 1` on a connection of its own, with
   * DB_ACQUIRE_TIMEOUT_MS as its timeout): health turns NOT_SERVING when a probe fails and SERVING
   * when one succeeds. A call failing on an unreachable database probes at once.
   */
  DB_PROBE_INTERVAL_MS: z.coerce.number().int().min(100).max(600_000).default(2000),
  /** How long shutdown waits for in-flight calls before cancelling them. */
  SHUTDOWN_GRACE_MS: z.coerce.number().int().min(0).max(600_000).default(10_000),
  /**
   * Set by a supervisor that holds our stdin open (`npm start`): when stdin closes, the
   * supervisor is gone — even if it was SIGKILLed — so stop gracefully instead of living on as an
   * orphan holding the ports.
   */
  STOP_WHEN_STDIN_CLOSES: z.stringbool().default(false),
  /**
   * The identity service's gRPC URL: every service fetches the JWK Set that verifies access tokens
   * from it (`AuthService.GetJwks`), caches it, and verifies tokens locally.
   */
  IDENTITY_URL: z.url({ protocol: /^https?$/, error: "must be an http(s):// URL" }).default("http://127.0.0.1:50051"),
  /**
   * The service credential (service-credential.ts): a deployment secret of ≥ 32 characters that
   * services present to each other for background work (content's usage reporter), which
   * analytics accepts for usage ingest only. Unset: no service calls (the reporter is off, said
   * at start). `npm start` generates one.
   */
  SERVICE_TOKEN: unsetIfEmpty(z.string().min(32, "must be at least 32 characters").max(512).optional()),
  /** The analytics service's gRPC URL, where services stream their usage events (usage-reporting.ts). */
  ANALYTICS_URL: z.url({ protocol: /^https?$/, error: "must be an http(s):// URL" }).default("http://127.0.0.1:50055"),
  /** The graph service's gRPC URL: content resolves the partials of a template (`{{> name}}`) there. */
  GRAPH_URL: z.url({ protocol: /^https?$/, error: "must be an http(s):// URL" }).default("http://127.0.0.1:50053"),
  /**
   * The content service's gRPC URL: analytics asks it, on the caller's behalf, what the caller may
   * see of an entity (entity statistics, label-move comparison).
   */
  CONTENT_URL: z.url({ protocol: /^https?$/, error: "must be an http(s):// URL" }).default("http://127.0.0.1:50052"),
  /**
   * The search service's gRPC URL: graph asks it, on the caller's behalf, for the entities similar
   * in meaning to one (GenerateSuggestions; structure alone while it is unreachable); content for the
   * near duplicates of a save (`check_near_duplicates`).
   */
  SEARCH_URL: z.url({ protocol: /^https?$/, error: "must be an http(s):// URL" }).default("http://127.0.0.1:50054"),
  /** Usage events a service keeps in memory while analytics is unreachable; past it they are dropped (counted, logged). */
  USAGE_BUFFER_MAX: z.coerce.number().int().min(100).max(10_000_000).default(10_000),
  /** The `iss` of access tokens: identity issues them with it, every service expects it. */
  TOKEN_ISSUER: z.string().min(1).max(200).default("promptcraft-identity"),
  /**
   * Web origins whose pages may call the Connect port from a browser (CORS), comma-separated and
   * exact (`https://app.example.com`), or `*` for any. Default: none (`npm start` allows the local
   * dev servers' origins).
   */
  CORS_ALLOWED_ORIGINS: z
    .string()
    .optional()
    .transform((value, ctx): readonly string[] | "*" => {
      const entries = (value ?? "").split(",").map((s) => s.trim()).filter((s) => s.length > 0);
      if (entries.includes("*")) {
        if (entries.length > 1) ctx.addIssue({ code: "custom", message: "* allows every origin: give it alone" });
        return "*";
      }
      for (const entry of entries) {
        if (!isOrigin(entry)) {
          ctx.addIssue({ code: "custom", message: `${entry} is not an origin: scheme://host[:port] as a browser sends it, no path or trailing slash (e.g. https://app.example.com)` });
        }
      }
      return entries;
    }),
  /** How long a browser may reuse a CORS preflight's answer, in seconds (Chromium caps it at 7200). */
  CORS_MAX_AGE_S: z.coerce.number().int().min(0).max(86_400).default(7200),
  // Tracing (OpenTelemetry): the standard variables, read here like every other setting. Tracing is
  // off unless an endpoint is set; an empty value counts as unset (as the specification says).
  /** OTLP/HTTP base URL (a collector, Jaeger, Tempo: `http://collector:4318`); spans go to `<it>/v1/traces`. */
  OTEL_EXPORTER_OTLP_ENDPOINT: unsetIfEmpty(z.url({ protocol: /^https?$/, error: "must be an http(s):// URL (OTLP/HTTP, e.g. http://localhost:4318)" }).optional()),
  /** The full traces URL, used as given; wins over OTEL_EXPORTER_OTLP_ENDPOINT. */
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: unsetIfEmpty(z.url({ protocol: /^https?$/, error: "must be an http(s):// URL (OTLP/HTTP, e.g. http://localhost:4318/v1/traces)" }).optional()),
  /** Only OTLP over HTTP with protobuf bodies is spoken (port 4318 of a collector, Jaeger or Tempo). */
  OTEL_EXPORTER_OTLP_PROTOCOL: unsetIfEmpty(z.literal("http/protobuf", { error: "only http/protobuf is supported (OTLP/HTTP, port 4318)" }).optional()),
  /** Headers of every export, `key=value,key2=value2` (values percent-encoded), e.g. a backend's API key. */
  OTEL_EXPORTER_OTLP_HEADERS: keyValueList("OTLP headers"),
  /** `service.name` of the spans; default `promptcraft-<service>`. */
  OTEL_SERVICE_NAME: unsetIfEmpty(z.string().max(200).optional()),
  /** Extra resource attributes, `key=value,…` (e.g. `deployment.environment.name=staging`). */
  OTEL_RESOURCE_ATTRIBUTES: keyValueList("resource attributes"),
  /** Which traces are recorded; parent-based honours the caller's sampled flag. */
  OTEL_TRACES_SAMPLER: unsetIfEmpty(z.enum(TRACES_SAMPLERS).default("parentbased_always_on")),
  /** The ratio of the `*traceidratio` samplers, 0–1 (default 1). */
  OTEL_TRACES_SAMPLER_ARG: unsetIfEmpty(z.coerce.number().min(0).max(1).optional()),
  /** `true` turns tracing off even with an endpoint set. */
  OTEL_SDK_DISABLED: unsetIfEmpty(z.stringbool().default(false)),
} as const;

/**
 * An empty variable (`FOO=`, or `${FOO:-}` in compose) means unset, as the OpenTelemetry
 * specification reads one.
 */
export function unsetIfEmpty<T extends z.ZodType>(schema: T) {
  return z.preprocess((value) => (value === "" ? undefined : value), schema);
}

/** `key=value,key2=value2` with percent-encoded values (the W3C Baggage format OTEL_* lists use). */
function keyValueList(what: string) {
  return z
    .string()
    .optional()
    .transform((value, ctx): Record<string, string> => {
      const out: Record<string, string> = {};
      for (const [i, entry] of (value ?? "").split(",").entries()) {
        if (entry.trim() === "") continue;
        const eq = entry.indexOf("=");
        const key = eq > 0 ? entry.slice(0, eq).trim() : "";
        let decoded: string | undefined;
        try {
          decoded = eq > 0 ? decodeURIComponent(entry.slice(eq + 1).trim()) : undefined;
        } catch {
          decoded = undefined;
        }
        if (key === "" || decoded === undefined) {
          // Not echoed: a header's value may be a secret.
          ctx.addIssue({ code: "custom", message: `${what}: entry ${i + 1} is not key=value (values percent-encoded)` });
          continue;
        }
        out[key] = decoded;
      }
      return out;
    });
}

/** True when `value` is exactly the serialisation of an origin, as browsers send it in `Origin`. */
function isOrigin(value: string): boolean {
  try {
    const url = new URL(value);
    return /^https?:$/.test(url.protocol) && url.origin === value;
  } catch {
    return false;
  }
}

const port = z.coerce.number().int().min(0).max(65535);

/**
 * Builds the zod schema of a service's config: the shared settings, `GRPC_PORT` and `CONNECT_PORT`
 * with the service's default ports, and the service's own fields.
 */
export function serviceConfig<Extra extends z.ZodRawShape>(
  defaults: { grpcPort: number; connectPort: number },
  extra: Extra,
) {
  return z.object({
    ...baseConfigShape,
    /** gRPC (grpc-js) port; 0 picks a free one. */
    GRPC_PORT: port.default(defaults.grpcPort),
    /** Connect + gRPC-Web port (HTTP/1.1 and h2c); 0 picks a free one. */
    CONNECT_PORT: port.default(defaults.connectPort),
    ...extra,
  });
}

/** Thrown by {@link loadConfig}; its message lists every bad variable. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/**
 * Parses `env` with `schema` and fails fast with one clear message naming every bad or missing
 * variable, e.g. `DATABASE_URL: must be a postgres:// URL`.
 */
export function loadConfig<S extends z.ZodType>(
  schema: S,
  env: Record<string, string | undefined> = process.env,
): z.infer<S> {
  const parsed = schema.safeParse(env);
  if (parsed.success) return parsed.data;
  const lines = parsed.error.issues.map((issue) => {
    const key = issue.path.join(".") || "(config)";
    const given = typeof issue.path[0] === "string" ? env[issue.path[0]] : undefined;
    return `  ${key}: ${given === undefined ? "missing — " : ""}${issue.message}`;
  });
  throw new ConfigError(`invalid configuration:\n${lines.join("\n")}`);
}
