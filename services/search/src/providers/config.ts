import { unsetIfEmpty } from "@promptcraft/platform";
import { z } from "zod";
import { OPENAI_DEFAULT_MAX_BATCH, OPENAI_DEFAULT_MAX_TEXT_CHARS, OPENAI_DEFAULT_TIMEOUT_MS, type OpenAiProviderOptions } from "./openai.js";

/**
 * Vector sizes of well-known models, so EMBEDDING_DIMENSIONS may be left out for them and is checked
 * when given. OpenAI's `text-embedding-3-*` can shorten their vectors (any size up to their own);
 * the others give exactly theirs.
 */
export const KNOWN_MODEL_DIMENSIONS: Readonly<Record<string, { dimensions: number; shortens: boolean }>> = {
  "text-embedding-3-small": { dimensions: 1536, shortens: true },
  "text-embedding-3-large": { dimensions: 3072, shortens: true },
  "text-embedding-ada-002": { dimensions: 1536, shortens: false },
};

/** pgvector's largest `vector`. */
const MAX_DIMENSIONS = 16_000;

/**
 * The embedding provider's environment variables (docs/embedding-providers.md), to spread into a
 * service's config (`serviceConfig(…, { ...embeddingConfigShape })`) together with
 * `.superRefine(checkEmbeddingConfig)` for the rules that tie them together.
 */
export const embeddingConfigShape = {
  /** `local` (built in, no network; the default) or `openai` (any server speaking the OpenAI embeddings API). */
  EMBEDDING_PROVIDER: unsetIfEmpty(z.enum(["local", "openai"]).default("local")),
  /** The API's base URL (`openai`); requests go to `<it>/embeddings`. */
  EMBEDDING_BASE_URL: unsetIfEmpty(
    z
      .url({ protocol: /^https?$/, error: "must be an http(s):// URL, e.g. https://api.openai.com/v1" })
      // Not echoed: a URL with user:password@ holds a secret. fetch refuses such URLs anyway.
      .refine((value) => {
        const url = new URL(value);
        return url.username === "" && url.password === "";
      }, "must not hold credentials (user:password@): put the key in EMBEDDING_API_KEY")
      .optional(),
  ),
  /** The API key (`openai`); never logged or shown. Servers without keys (Ollama, a local TEI) leave it unset. */
  EMBEDDING_API_KEY: unsetIfEmpty(
    // Checked here because an invalid header value makes fetch throw a message quoting it.
    z.string().max(4096).regex(/^[\x21-\x7e]+$/, "must be printable ASCII without spaces").optional(),
  ),
  /** Which header carries the key: `authorization` (Bearer; OpenAI, vLLM, TEI, Ollama) or `api-key` (Azure OpenAI). */
  EMBEDDING_API_KEY_HEADER: unsetIfEmpty(z.enum(["authorization", "api-key"]).default("authorization")),
  /** Azure OpenAI's `api-version` query parameter, e.g. `2024-10-21`; unset for other servers. */
  EMBEDDING_API_VERSION: unsetIfEmpty(z.string().regex(/^[\w.-]{1,40}$/, "must look like 2024-10-21").optional()),
  /** The model name sent to the API and registered with the vectors (`openai`: required). */
  EMBEDDING_MODEL: unsetIfEmpty(z.string().min(1).max(200).optional()),
  /** The model's vector size; every answer is checked against it. Optional for the models of {@link KNOWN_MODEL_DIMENSIONS}. */
  EMBEDDING_DIMENSIONS: unsetIfEmpty(z.coerce.number().int().min(1).max(MAX_DIMENSIONS).optional()),
  /** Whether requests carry `dimensions` (only shortening models accept it). Default: true for `text-embedding-3-*`. */
  EMBEDDING_SEND_DIMENSIONS: unsetIfEmpty(z.stringbool().optional()),
  /** Longest one provider call may take, in milliseconds. */
  EMBEDDING_TIMEOUT_MS: unsetIfEmpty(z.coerce.number().int().min(100).max(600_000).default(OPENAI_DEFAULT_TIMEOUT_MS)),
  /** Most texts per provider call (TEI's default limit is 32; OpenAI takes 2048). */
  EMBEDDING_MAX_BATCH: unsetIfEmpty(z.coerce.number().int().min(1).max(2048).default(OPENAI_DEFAULT_MAX_BATCH)),
  /** Longest text sent, in characters; a longer one fails its job at once instead of being truncated silently. */
  EMBEDDING_MAX_TEXT_CHARS: unsetIfEmpty(z.coerce.number().int().min(1).max(10_000_000).default(OPENAI_DEFAULT_MAX_TEXT_CHARS)),
} as const;

/** The embedding settings as parsed (before {@link checkEmbeddingConfig}). */
export type EmbeddingEnv = z.infer<z.ZodObject<typeof embeddingConfigShape>>;

const OPENAI_ONLY = ["EMBEDDING_BASE_URL", "EMBEDDING_API_KEY", "EMBEDDING_API_VERSION", "EMBEDDING_MODEL", "EMBEDDING_DIMENSIONS", "EMBEDDING_SEND_DIMENSIONS"] as const;

/** The rules between the variables: `openai` needs a URL, a model and a size; `local` takes no URL or key. */
export function checkEmbeddingConfig(env: EmbeddingEnv, ctx: z.RefinementCtx): void {
  const issue = (variable: keyof EmbeddingEnv, message: string) => ctx.addIssue({ code: "custom", path: [variable], message });
  if (env.EMBEDDING_PROVIDER === "local") {
    // Set without EMBEDDING_PROVIDER=openai, they would be ignored, and texts embedded locally unnoticed.
    for (const variable of OPENAI_ONLY) {
      if (env[variable] !== undefined) issue(variable, "is only used with EMBEDDING_PROVIDER=openai (the local provider has one model)");
    }
    return;
  }
  if (env.EMBEDDING_BASE_URL === undefined) issue("EMBEDDING_BASE_URL", "required with EMBEDDING_PROVIDER=openai (e.g. https://api.openai.com/v1)");
  if (env.EMBEDDING_MODEL === undefined) {
    issue("EMBEDDING_MODEL", "required with EMBEDDING_PROVIDER=openai (e.g. text-embedding-3-small)");
    return;
  }
  const known = KNOWN_MODEL_DIMENSIONS[env.EMBEDDING_MODEL];
  if (env.EMBEDDING_DIMENSIONS === undefined) {
    if (!known) issue("EMBEDDING_DIMENSIONS", `required for model ${env.EMBEDDING_MODEL}: the size of its vectors`);
  } else if (known && (known.shortens ? env.EMBEDDING_DIMENSIONS > known.dimensions : env.EMBEDDING_DIMENSIONS !== known.dimensions)) {
    issue(
      "EMBEDDING_DIMENSIONS",
      `model ${env.EMBEDDING_MODEL} gives ${known.shortens ? "at most " : ""}${known.dimensions} dimensions, not ${env.EMBEDDING_DIMENSIONS}`,
    );
  } else if (known && env.EMBEDDING_DIMENSIONS < known.dimensions && env.EMBEDDING_SEND_DIMENSIONS === false) {
    issue("EMBEDDING_SEND_DIMENSIONS", `must not be false: model ${env.EMBEDDING_MODEL} gives ${known.dimensions} dimensions unless asked for ${env.EMBEDDING_DIMENSIONS}`);
  }
}

/** The parsed, checked embedding settings alone (a service spreads {@link embeddingConfigShape} into its own config instead). */
export const EmbeddingConfig = z.object(embeddingConfigShape).superRefine(checkEmbeddingConfig);
export type EmbeddingConfig = z.infer<typeof EmbeddingConfig>;

/** Which provider to build, and with what: the `local` provider's limits, or the OpenAI provider's options. */
export type EmbeddingProviderSettings =
  | { kind: "local"; maxBatch: number; maxTextChars: number }
  | { kind: "openai"; options: Omit<OpenAiProviderOptions, "log"> };

/**
 * The provider settings of a config that passed {@link checkEmbeddingConfig}, e.g.
 * `settings.kind === "openai" ? createOpenAiProvider({ ...settings.options, log }) : createLocalProvider(…)`.
 */
export function embeddingProviderSettings(config: EmbeddingEnv): EmbeddingProviderSettings {
  const limits = { maxBatch: config.EMBEDDING_MAX_BATCH, maxTextChars: config.EMBEDDING_MAX_TEXT_CHARS };
  if (config.EMBEDDING_PROVIDER === "local") {
    return { kind: "local", ...limits };
  }
  const { EMBEDDING_BASE_URL: baseUrl, EMBEDDING_MODEL: model } = config;
  const dimensions = config.EMBEDDING_DIMENSIONS ?? (model === undefined ? undefined : KNOWN_MODEL_DIMENSIONS[model]?.dimensions);
  if (baseUrl === undefined || model === undefined || dimensions === undefined) {
    throw new Error("embeddingProviderSettings: the config was not checked with checkEmbeddingConfig");
  }
  return {
    kind: "openai",
    options: {
      baseUrl,
      model,
      dimensions,
      apiKey: config.EMBEDDING_API_KEY,
      apiKeyHeader: config.EMBEDDING_API_KEY_HEADER,
      apiVersion: config.EMBEDDING_API_VERSION,
      sendDimensions: config.EMBEDDING_SEND_DIMENSIONS,
      timeoutMs: config.EMBEDDING_TIMEOUT_MS,
      ...limits,
    },
  };
}
