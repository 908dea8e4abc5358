import assert from "node:assert/strict";
import { ConfigError, loadConfig, serviceConfig } from "@promptcraft/platform";
import { describe, test } from "vitest";
import { checkEmbeddingConfig, EmbeddingConfig, embeddingConfigShape, embeddingProviderSettings } from "./config.js";

const load = (env: Record<string, string>) => loadConfig(EmbeddingConfig, env);

/** The message loadConfig fails `env` with. */
function configError(env: Record<string, string>): string {
  try {
    load(env);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.message;
  }
  throw new Error("the config was accepted");
}

function includes(text: string, part: string): void {
  assert.ok(text.includes(part), `expected ${JSON.stringify(text)} to include ${JSON.stringify(part)}`);
}

const openai = { EMBEDDING_PROVIDER: "openai", EMBEDDING_BASE_URL: "https://api.openai.com/v1", EMBEDDING_MODEL: "text-embedding-3-small" };

describe("embedding config", () => {
  test("nothing set: the local provider with the default limits", () => {
    assert.deepEqual(embeddingProviderSettings(load({})), { kind: "local", maxBatch: 32, maxTextChars: 32_000 });
    // Empty values (compose's ${X:-}) count as unset.
    assert.deepEqual(embeddingProviderSettings(load({ EMBEDDING_PROVIDER: "", EMBEDDING_BASE_URL: "", EMBEDDING_MAX_BATCH: "" })), {
      kind: "local",
      maxBatch: 32,
      maxTextChars: 32_000,
    });
  });

  test("openai with every variable", () => {
    const config = load({
      ...openai,
      EMBEDDING_BASE_URL: "https://res.openai.azure.com/openai/deployments/embed",
      EMBEDDING_API_KEY: "sk-abc",
      EMBEDDING_API_KEY_HEADER: "api-key",
      EMBEDDING_API_VERSION: "2024-10-21",
      EMBEDDING_DIMENSIONS: "512",
      EMBEDDING_SEND_DIMENSIONS: "true",
      EMBEDDING_TIMEOUT_MS: "5000",
      EMBEDDING_MAX_BATCH: "256",
      EMBEDDING_MAX_TEXT_CHARS: "8000",
    });
    assert.deepEqual(embeddingProviderSettings(config), {
      kind: "openai",
      options: {
        baseUrl: "https://res.openai.azure.com/openai/deployments/embed",
        model: "text-embedding-3-small",
        dimensions: 512,
        apiKey: "sk-abc",
        apiKeyHeader: "api-key",
        apiVersion: "2024-10-21",
        sendDimensions: true,
        timeoutMs: 5000,
        maxBatch: 256,
        maxTextChars: 8000,
      },
    });
  });

  test("a known model's size is its default; an unknown model needs one", () => {
    const settings = embeddingProviderSettings(load(openai));
    assert.ok(settings.kind === "openai");
    assert.equal(settings.options.dimensions, 1536);
    assert.equal(settings.options.apiKeyHeader, "authorization");
    assert.equal(settings.options.timeoutMs, 30_000);
    assert.equal(settings.options.sendDimensions, undefined);
    includes(configError({ ...openai, EMBEDDING_MODEL: "nomic-embed-text" }),
      "EMBEDDING_DIMENSIONS: missing — required for model nomic-embed-text: the size of its vectors",
    );
    const nomic = embeddingProviderSettings(load({ ...openai, EMBEDDING_MODEL: "nomic-embed-text", EMBEDDING_DIMENSIONS: "768" }));
    assert.ok(nomic.kind === "openai");
    assert.equal(nomic.options.model, "nomic-embed-text");
    assert.equal(nomic.options.dimensions, 768);
  });

  test("a size a known model cannot give is refused", () => {
    includes(configError({ ...openai, EMBEDDING_MODEL: "text-embedding-3-large", EMBEDDING_DIMENSIONS: "4096" }),
      "model text-embedding-3-large gives at most 3072 dimensions, not 4096",
    );
    includes(configError({ ...openai, EMBEDDING_MODEL: "text-embedding-ada-002", EMBEDDING_DIMENSIONS: "512" }),
      "model text-embedding-ada-002 gives 1536 dimensions, not 512",
    );
    includes(configError({ ...openai, EMBEDDING_DIMENSIONS: "512", EMBEDDING_SEND_DIMENSIONS: "false" }),
      "EMBEDDING_SEND_DIMENSIONS: must not be false: model text-embedding-3-small gives 1536 dimensions unless asked for 512",
    );
  });

  test("openai without a URL or a model says which is missing", () => {
    const message = configError({ EMBEDDING_PROVIDER: "openai" });
    includes(message, "EMBEDDING_BASE_URL: missing — required with EMBEDDING_PROVIDER=openai");
    includes(message, "EMBEDDING_MODEL: missing — required with EMBEDDING_PROVIDER=openai");
  });

  test("openai settings without EMBEDDING_PROVIDER=openai are refused, not ignored", () => {
    const message = configError({ EMBEDDING_BASE_URL: "http://localhost:11434/v1", EMBEDDING_MODEL: "nomic-embed-text" });
    includes(message, "EMBEDDING_BASE_URL: is only used with EMBEDDING_PROVIDER=openai");
    includes(message, "EMBEDDING_MODEL: is only used with EMBEDDING_PROVIDER=openai");
  });

  test("bad values are named, and secrets are not repeated", () => {
    const message = configError({
      ...openai,
      EMBEDDING_PROVIDER: "openai",
      EMBEDDING_BASE_URL: "https://user:hunter2-password@api.example.com/v1",
      EMBEDDING_API_KEY: "sk with spaces-hunter3",
      EMBEDDING_TIMEOUT_MS: "10",
      EMBEDDING_MAX_BATCH: "0",
    });
    includes(message, "EMBEDDING_BASE_URL: must not hold credentials");
    includes(message, "EMBEDDING_API_KEY: must be printable ASCII without spaces");
    includes(message, "EMBEDDING_TIMEOUT_MS:");
    includes(message, "EMBEDDING_MAX_BATCH:");
    assert.ok(!message.includes("hunter2"), message);
    assert.ok(!message.includes("hunter3"), message);
    includes(configError({ EMBEDDING_PROVIDER: "cohere" }), "EMBEDDING_PROVIDER:");
    includes(configError({ ...openai, EMBEDDING_BASE_URL: "ftp://x" }), "EMBEDDING_BASE_URL: must be an http(s):// URL");
  });

  test("plugs into a service's config", () => {
    const schema = serviceConfig({ grpcPort: 1, connectPort: 2 }, { ...embeddingConfigShape }).superRefine(checkEmbeddingConfig);
    const env = { DATABASE_URL: "postgres://localhost/x", ...openai };
    const config = loadConfig(schema, env);
    assert.equal(config.GRPC_PORT, 1);
    const settings = embeddingProviderSettings(config);
    assert.equal(settings.kind === "openai" && settings.options.model, "text-embedding-3-small");
    assert.throws(() => loadConfig(schema, { DATABASE_URL: "postgres://localhost/x", EMBEDDING_PROVIDER: "openai" }), /EMBEDDING_BASE_URL/);
  });
});
