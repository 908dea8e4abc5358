import type { Logger } from "@promptcraft/platform";
import { embeddingProviderSettings, type EmbeddingEnv } from "./config.js";
import { LOCAL_MODEL, LocalHashProvider } from "./local.js";
import { createOpenAiProvider } from "./openai.js";
import type { EmbeddingProvider } from "./provider.js";

/** How a model is served, as ListEmbeddingModels describes it. */
export interface ModelInfo {
  provider: EmbeddingProvider;
  kind: "local" | "openai_compatible";
  description: string;
}

/**
 * The embedding models this process serves, the default first. Every model's vectors live in the
 * same `embedding` table under its name; the pipeline embeds each new version with every model.
 */
export class ModelRegistry {
  private readonly byName = new Map<string, ModelInfo>();

  constructor(readonly models: readonly ModelInfo[]) {
    if (models.length === 0) throw new Error("at least one embedding model is needed");
    for (const m of models) this.byName.set(m.provider.model, m);
  }

  /** The model used when a request names none. */
  get defaultModel(): ModelInfo {
    return this.models[0]!;
  }

  get(name: string): ModelInfo | undefined {
    return this.byName.get(name);
  }

  get names(): string[] {
    return this.models.map((m) => m.provider.model);
  }
}

/** The built-in local model, described for clients. */
export function localModel(): ModelInfo {
  return {
    provider: new LocalHashProvider(),
    kind: "local",
    description: `${LOCAL_MODEL}: built in, no network. Feature hashing of words and character trigrams into 384 dimensions: lexical similarity (shared words and spellings), not meaning.`,
  };
}

/**
 * The models of a configuration: with `EMBEDDING_PROVIDER=openai`, that model first (the default
 * for requests that name none) and the local one beside it (no network, always there: full pages
 * of lexical matches while the provider is away); otherwise the local one alone.
 */
export function configuredModels(config: EmbeddingEnv, log: Logger): ModelInfo[] {
  const settings = embeddingProviderSettings(config);
  if (settings.kind === "local") return [localModel()];
  const { baseUrl, model, dimensions } = settings.options;
  return [
    {
      provider: createOpenAiProvider({ ...settings.options, log: log.child({ component: "embedding-provider" }) }),
      kind: "openai_compatible",
      description: `${model}: OpenAI-compatible embeddings API at ${new URL(baseUrl).origin}, ${dimensions} dimensions.`,
    },
    localModel(),
  ];
}
