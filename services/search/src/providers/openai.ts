import { EmbeddingError, type EmbeddingProvider } from "./provider.js";

/** Options of {@link createOpenAiProvider}; `providers/config.ts` builds them from the environment. */
export interface OpenAiProviderOptions {
  /**
   * The API's base URL; texts are posted to `<baseUrl>/embeddings`. OpenAI `https://api.openai.com/v1`,
   * Ollama `http://localhost:11434/v1`, vLLM and TEI `http://host:port/v1`, Azure OpenAI
   * `https://<resource>.openai.azure.com/openai/deployments/<deployment>` (with `apiVersion`).
   */
  baseUrl: string;
  /** The model name sent in each request and registered in `embedding.model`. */
  model: string;
  /** The model's declared vector size: every answer is checked against it. */
  dimensions: number;
  /** Sent as `Authorization: Bearer <key>` (or in `api-key`, see `apiKeyHeader`); never logged or put in an error. */
  apiKey?: string;
  /** `authorization` (Bearer; OpenAI, vLLM, TEI, Ollama) or `api-key` (Azure OpenAI's key header). Default `authorization`. */
  apiKeyHeader?: "authorization" | "api-key";
  /** Azure OpenAI's `api-version` query parameter (e.g. `2024-10-21`); unset for every other server. */
  apiVersion?: string;
  /**
   * Whether requests carry `dimensions` (only models that can shorten their vectors accept it:
   * OpenAI's `text-embedding-3-*`; others reject or ignore it). Default: true for `text-embedding-3-*`.
   */
  sendDimensions?: boolean;
  /** Longest one call may take, from sending to the last byte of the answer. Default 30 000 ms. */
  timeoutMs?: number;
  /** Most texts per call (TEI's default limit is 32, OpenAI's 2048). Default 32. */
  maxBatch?: number;
  /** Longest text accepted, in UTF-16 code units; longer ones are refused before any request. Default 32 000. */
  maxTextChars?: number;
  /** Where one debug line per call goes (model, texts, status, milliseconds); never the key. */
  log?: EmbeddingCallLog;
}

/** The part of a logger the provider uses; the platform's pino `Logger` is one. */
export interface EmbeddingCallLog {
  debug(fields: Record<string, unknown>, message: string): void;
}

export const OPENAI_DEFAULT_TIMEOUT_MS = 30_000;
export const OPENAI_DEFAULT_MAX_BATCH = 32;
export const OPENAI_DEFAULT_MAX_TEXT_CHARS = 32_000;

/** Longest piece of a provider's answer quoted in an error. */
const QUOTE_CHARS = 300;

/**
 * An {@link EmbeddingProvider} that speaks the OpenAI embeddings API (`POST <baseUrl>/embeddings`,
 * `{model, input, dimensions?, encoding_format: "float"}`), which OpenAI, Azure OpenAI, Ollama, vLLM and
 * Hugging Face TEI all serve. One `embed` call is one request; retrying is the caller's (it gets
 * `retryable` and `retryAfterMs` on the {@link EmbeddingError}):
 * - retryable: 408, 429, 5xx, a broken connection, the timeout, the caller's abort, and answers that
 *   are not a well-formed list of one finite vector per text (a proxy or server having a bad moment);
 * - not retryable: other 4xx (with the provider's own message), a redirect, input too large, and
 *   vectors of another size than `dimensions` (a configuration error no retry fixes).
 * The API key lives only in this closure: no error, log line or property of the provider holds it,
 * and a provider's message quoting it is redacted.
 */
export function createOpenAiProvider(options: OpenAiProviderOptions): EmbeddingProvider {
  const { model, dimensions, apiKey, log } = options;
  const timeoutMs = options.timeoutMs ?? OPENAI_DEFAULT_TIMEOUT_MS;
  const maxBatch = options.maxBatch ?? OPENAI_DEFAULT_MAX_BATCH;
  const maxTextChars = options.maxTextChars ?? OPENAI_DEFAULT_MAX_TEXT_CHARS;
  const sendDimensions = options.sendDimensions ?? model.startsWith("text-embedding-3");
  const url = embeddingsUrl(options.baseUrl, options.apiVersion);
  // Errors name the server by origin only: a path or query may hold what should not be repeated.
  const where = `embedding provider ${url.origin} (model ${model})`;
  const headers: Record<string, string> = { "content-type": "application/json", accept: "application/json" };
  if (apiKey) {
    if (options.apiKeyHeader === "api-key") headers["api-key"] = apiKey;
    else headers.authorization = `Bearer ${apiKey}`;
  }

  // The key as sent, and as it reads inside a JSON string (a server quoting it, or our own quoting).
  const secrets = apiKey ? [...new Set([apiKey, JSON.stringify(apiKey).slice(1, -1)])] : [];
  const redact = (text: string): string => secrets.reduce((out, secret) => out.replaceAll(secret, "[redacted]"), text);
  const fail = (message: string, retryable: boolean, retryAfterMs?: number): EmbeddingError =>
    new EmbeddingError(redact(`${where}: ${message}`), retryable, retryAfterMs);

  function checkInput(texts: readonly string[]): void {
    if (texts.length > maxBatch) throw fail(`${texts.length} texts in one call, more than its limit of ${maxBatch} (EMBEDDING_MAX_BATCH)`, false);
    texts.forEach((text, i) => {
      if (text.length === 0) throw fail(`text ${i} is empty: the embeddings API refuses empty input`, false);
      if (text.length > maxTextChars) {
        throw fail(`text ${i} has ${text.length} characters, more than the limit of ${maxTextChars} (EMBEDDING_MAX_TEXT_CHARS)`, false);
      }
    });
  }

  async function post(texts: readonly string[], signal: AbortSignal): Promise<{ status: number; headers: Headers; body: string }> {
    if (signal.aborted) throw fail("cancelled by the caller before sending", true);
    // One controller for the caller's signal and our timeout, both cleaned up after the call (a
    // long-lived caller signal must not collect a listener per call).
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    const onCallerAbort = () => controller.abort();
    signal.addEventListener("abort", onCallerAbort, { once: true });
    try {
      const response = await fetch(url, {
        method: "POST",
        headers,
        body: JSON.stringify({ model, input: texts, ...(sendDimensions ? { dimensions } : {}), encoding_format: "float" }),
        signal: controller.signal,
        // A redirect is not followed: the key would go with it (custom headers such as `api-key`
        // survive cross-origin redirects), and an API endpoint has no business redirecting.
        redirect: "manual",
      });
      // Redacted at once, before any quoting could escape it out of recognition.
      return { status: response.status, headers: response.headers, body: redact(await response.text()) };
    } catch (err) {
      if (timedOut) throw fail(`no answer within ${timeoutMs} ms (EMBEDDING_TIMEOUT_MS)`, true);
      if (signal.aborted) throw fail("cancelled by the caller", true);
      throw fail(`cannot reach it: ${networkReason(err)}`, true);
    } finally {
      clearTimeout(timer);
      signal.removeEventListener("abort", onCallerAbort);
    }
  }

  function failure(status: number, responseHeaders: Headers, body: string): EmbeddingError {
    if (status >= 300 && status < 400) {
      return fail(`answered a redirect (${status}), which is not followed: set the base URL to the final address`, false);
    }
    const said = providerMessage(body);
    const message = `answered ${status}${said ? `: ${said}` : ""}`;
    if (status === 408 || status === 429 || status >= 500) {
      const retryAfterMs = retryAfterMsOf(responseHeaders);
      return fail(retryAfterMs === undefined ? message : `${message} (retry after ${retryAfterMs} ms)`, true, retryAfterMs);
    }
    return fail(message, false);
  }

  function vectorsOf(texts: readonly string[], body: string): number[][] {
    let answer: unknown;
    try {
      answer = JSON.parse(body);
    } catch {
      throw fail(`answered a body that is not JSON: ${quote(body)}`, true);
    }
    const data = (answer as { data?: unknown } | null)?.data;
    if (!Array.isArray(data)) throw fail(`answered JSON without a "data" array: ${quote(body)}`, true);
    if (data.length !== texts.length) throw fail(`answered ${data.length} embeddings for ${texts.length} texts`, true);
    // Items carry their input's `index`; they need not come in order. A server leaving every index
    // out is read in order.
    const indexed = data.some((item) => (item as { index?: unknown } | null)?.index !== undefined);
    const vectors: (number[] | undefined)[] = Array.from({ length: texts.length }, () => undefined);
    data.forEach((item: unknown, position) => {
      const { index, embedding } = (item ?? {}) as { index?: unknown; embedding?: unknown };
      const slot = indexed ? index : position;
      if (typeof slot !== "number" || !Number.isInteger(slot) || slot < 0 || slot >= texts.length) {
        throw fail(`answered data[${position}] with index ${JSON.stringify(index)}, not one of 0..${texts.length - 1}`, true);
      }
      if (vectors[slot] !== undefined) throw fail(`answered index ${slot} twice`, true);
      vectors[slot] = vectorOf(embedding, slot);
    });
    return vectors as number[][];
  }

  function vectorOf(embedding: unknown, index: number): number[] {
    if (!Array.isArray(embedding)) {
      throw fail(`answered embedding ${index} as ${typeof embedding === "string" ? "a string" : JSON.stringify(embedding) ?? "nothing"}, not an array of numbers`, true);
    }
    if (embedding.length !== dimensions) {
      throw fail(
        `answered a vector of ${embedding.length} dimensions, but the model is declared with ${dimensions} (EMBEDDING_DIMENSIONS): ` +
          `declare the model's real size, or use a model that gives ${dimensions}`,
        false,
      );
    }
    const position = embedding.findIndex((value) => typeof value !== "number" || !Number.isFinite(value));
    if (position >= 0) {
      throw fail(`answered embedding ${index} with ${JSON.stringify(embedding[position])} at position ${position}, not a finite number`, true);
    }
    return embedding as number[];
  }

  return {
    model,
    dimensions,
    maxBatch,
    async embed(texts, signal) {
      checkInput(texts);
      if (texts.length === 0) return [];
      const started = performance.now();
      let status: number | undefined;
      try {
        const response = await post(texts, signal);
        status = response.status;
        if (status < 200 || status >= 300) throw failure(status, response.headers, response.body);
        const vectors = vectorsOf(texts, response.body);
        log?.debug({ model, texts: texts.length, status, ms: Math.round(performance.now() - started) }, "embedding call");
        return vectors;
      } catch (err) {
        log?.debug({ model, texts: texts.length, status, ms: Math.round(performance.now() - started), error: (err as Error).message }, "embedding call failed");
        throw err;
      }
    },
  };
}

function quote(text: string): string {
  const trimmed = text.trim();
  if (trimmed === "") return "(empty)";
  return JSON.stringify(trimmed.length > QUOTE_CHARS ? `${trimmed.slice(0, QUOTE_CHARS)}…` : trimmed);
}

/** What a provider's error body says: OpenAI/Azure/vLLM `{error: {message, type, code}}`, TEI/Ollama `{error: "…"}`, or the text. */
function providerMessage(body: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return body.trim() === "" ? undefined : quote(body);
  }
  const { error, message, detail } = (parsed ?? {}) as { error?: unknown; message?: unknown; detail?: unknown };
  if (typeof error === "string") return clip(error);
  if (error !== null && typeof error === "object") {
    const { message: text, type, code } = error as { message?: unknown; type?: unknown; code?: unknown };
    const tags = [typeof type === "string" ? `type ${type}` : "", typeof code === "string" || typeof code === "number" ? `code ${code}` : ""].filter(Boolean);
    if (typeof text === "string") return `${clip(text)}${tags.length ? ` (${tags.join(", ")})` : ""}`;
  }
  if (typeof message === "string") return clip(message);
  if (typeof detail === "string") return clip(detail);
  return quote(body);
}

/** `<baseUrl>/embeddings`, with Azure's `api-version` when given. */
function embeddingsUrl(baseUrl: string, apiVersion: string | undefined): URL {
  const url = new URL(`${baseUrl.replace(/\/+$/, "")}/embeddings`);
  if (apiVersion) url.searchParams.set("api-version", apiVersion);
  return url;
}

/**
 * How long a provider asks to wait: `retry-after-ms` (Azure, OpenAI) or `Retry-After` in seconds or as an
 * HTTP-date (RFC 9110 §10.2.3). Undefined when absent or unreadable; a date in the past is 0.
 */
export function retryAfterMsOf(headers: Headers, now = Date.now()): number | undefined {
  const ms = headers.get("retry-after-ms")?.trim();
  if (ms && /^\d+(\.\d+)?$/.test(ms)) return Math.ceil(Number(ms));
  const value = headers.get("retry-after")?.trim();
  if (!value) return undefined;
  if (/^\d+(\.\d+)?$/.test(value)) return Math.ceil(Number(value) * 1000);
  // An HTTP-date starts with the day's name; Date.parse would read "-5" as a year.
  const date = /^[A-Za-z]{3}/.test(value) ? Date.parse(value) : Number.NaN;
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** fetch's "fetch failed" says nothing; the reason is in its cause (ECONNREFUSED, a reset socket…). */
function networkReason(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown; message?: unknown } } | undefined)?.cause;
  if (cause && typeof cause.code === "string") return cause.code;
  if (cause && typeof cause.message === "string") return cause.message;
  return err instanceof Error ? err.message : String(err);
}

function clip(text: string): string {
  return text.length > QUOTE_CHARS ? `${text.slice(0, QUOTE_CHARS)}…` : text;
}
