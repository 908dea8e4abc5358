import { inspect } from "node:util";
import type { Logger } from "@promptcraft/platform";
import { embeddingsAnswer, FakeEmbeddingsServer, fakeEmbedding, openAiError, type FakeEmbeddingsReply } from "@promptcraft/testing";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { createOpenAiProvider, retryAfterMsOf, type EmbeddingCallLog, type OpenAiProviderOptions } from "./openai.js";
import { EmbeddingError } from "./provider.js";

// Quotes and a backslash: JSON escapes them, so a key echoed inside a JSON body must still be found.
const API_KEY = 'sk-test-"quoted"\\secret-0123456789';
const MODEL = "test-embed";
const DIMENSIONS = 8;

// The platform's pino logger is what the service passes.
const _loggerFits: EmbeddingCallLog = undefined as unknown as Logger;

let server: FakeEmbeddingsServer;
const logged: string[] = [];
const log: EmbeddingCallLog = { debug: (fields, message) => logged.push(JSON.stringify({ ...fields, message })) };

beforeAll(async () => {
  server = await FakeEmbeddingsServer.start({ dimensions: DIMENSIONS, apiKey: API_KEY });
});
afterAll(async () => {
  await server.close();
});
afterEach(() => {
  server.handle(undefined);
  server.requests.length = 0;
  logged.length = 0;
});

function provider(options: Partial<OpenAiProviderOptions> = {}) {
  return createOpenAiProvider({ baseUrl: server.baseUrl, model: MODEL, dimensions: DIMENSIONS, apiKey: API_KEY, log, ...options });
}

const never = new AbortController().signal;

/** The EmbeddingError `promise` rejects with. */
async function failure(promise: Promise<unknown>): Promise<EmbeddingError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(EmbeddingError);
  return err as EmbeddingError;
}

/** An answer whose `data` items are `items` (the rest as OpenAI gives it). */
function answerWith(items: unknown[]): FakeEmbeddingsReply {
  return { json: { object: "list", model: MODEL, data: items, usage: { prompt_tokens: 1, total_tokens: 1 } } };
}

const vector = (text: string) => fakeEmbedding(text, DIMENSIONS);

describe("a well-formed answer", () => {
  test("gives one vector per text, in the order given, from an OpenAI-shaped request", async () => {
    const texts = ["alpha", "beta", "gamma"];
    expect(await provider().embed(texts, never)).toEqual(texts.map(vector));
    const [request] = server.requests;
    expect(request?.method).toBe("POST");
    expect(request?.path).toBe("/v1/embeddings");
    expect(request?.headers.authorization).toBe(`Bearer ${API_KEY}`);
    expect(request?.headers["content-type"]).toBe("application/json");
    // `dimensions` only goes to models that can shorten their vectors.
    expect(request?.body).toEqual({ model: MODEL, input: texts, encoding_format: "float" });
  });

  test("is put back in input order by `index` when the server answers out of order", async () => {
    const texts = ["one", "two", "three", "four"];
    server.reply(answerWith([3, 1, 0, 2].map((index) => ({ object: "embedding", index, embedding: vector(texts[index]!) }))));
    expect(await provider().embed(texts, never)).toEqual(texts.map(vector));
  });

  test("is read in order when the server leaves every index out", async () => {
    const texts = ["one", "two"];
    server.reply(answerWith(texts.map((text) => ({ embedding: vector(text) }))));
    expect(await provider().embed(texts, never)).toEqual(texts.map(vector));
  });

  test("asks text-embedding-3 models for the declared size", async () => {
    const shortened = createOpenAiProvider({ baseUrl: server.baseUrl, model: "text-embedding-3-small", dimensions: 4, apiKey: API_KEY });
    expect(await shortened.embed(["x"], never)).toEqual([fakeEmbedding("x", 4)]);
    expect(server.requests[0]?.body).toMatchObject({ model: "text-embedding-3-small", dimensions: 4 });
  });

  test("speaks Azure OpenAI: the key in `api-key`, the api-version in the query, the deployment in the path", async () => {
    server.handle((request) => ({ json: embeddingsAnswer("azure", (request.body as { input: string[] }).input.map(vector)) }));
    const azure = provider({ baseUrl: `${server.baseUrl}/openai/deployments/my-deployment/`, apiKeyHeader: "api-key", apiVersion: "2024-10-21" });
    expect(await azure.embed(["hello"], never)).toEqual([vector("hello")]);
    const [request] = server.requests;
    expect(request?.path).toBe("/v1/openai/deployments/my-deployment/embeddings");
    expect(request?.query.get("api-version")).toBe("2024-10-21");
    expect(request?.headers["api-key"]).toBe(API_KEY);
    expect(request?.headers.authorization).toBeUndefined();
  });

  test("needs no key (Ollama, a local TEI)", async () => {
    server.handle((request) => ({ json: embeddingsAnswer(MODEL, (request.body as { input: string[] }).input.map(vector)) }));
    expect(await provider({ apiKey: undefined }).embed(["a"], never)).toEqual([vector("a")]);
    expect(server.requests[0]?.headers.authorization).toBeUndefined();
  });

  test("the provider says its model, size and batch limit", () => {
    expect(provider({ maxBatch: 7 })).toMatchObject({ model: MODEL, dimensions: DIMENSIONS, maxBatch: 7 });
  });
});

describe("input limits", () => {
  test("a full batch is one request; a larger one is refused before sending", async () => {
    const small = provider({ maxBatch: 4 });
    const texts = ["a", "b", "c", "d"];
    expect(await small.embed(texts, never)).toEqual(texts.map(vector));
    expect(server.requests).toHaveLength(1);
    expect((server.requests[0]?.body as { input: string[] }).input).toEqual(texts);

    const err = await failure(small.embed([...texts, "e"], never));
    expect(err.retryable).toBe(false);
    expect(err.message).toContain("5 texts in one call, more than its limit of 4");
    expect(server.requests).toHaveLength(1);
  });

  test("an oversized or empty text is refused before sending, naming it", async () => {
    const tooLong = await failure(provider({ maxTextChars: 10 }).embed(["short", "x".repeat(11)], never));
    expect(tooLong.retryable).toBe(false);
    expect(tooLong.message).toContain("text 1 has 11 characters, more than the limit of 10");

    const empty = await failure(provider().embed(["fine", ""], never));
    expect(empty.retryable).toBe(false);
    expect(empty.message).toContain("text 1 is empty");
    expect(server.requests).toHaveLength(0);
  });

  test("no texts: no request", async () => {
    expect(await provider().embed([], never)).toEqual([]);
    expect(server.requests).toHaveLength(0);
  });
});

describe("errors the provider answers", () => {
  test("429 with Retry-After in seconds is retryable after that long", async () => {
    server.reply({ ...openAiError(429, "requests", "rate_limit_exceeded", "Rate limit reached for requests"), headers: { "retry-after": "3" } });
    const err = await failure(provider().embed(["a"], never));
    expect(err).toMatchObject({ retryable: true, retryAfterMs: 3000 });
    expect(err.message).toContain("answered 429: Rate limit reached for requests (type requests, code rate_limit_exceeded)");
  });

  test("429 with Retry-After as an HTTP-date is retryable until that date", async () => {
    const at = new Date(Date.now() + 120_000);
    server.reply({ ...openAiError(429, "requests", null, "slow down"), headers: { "retry-after": at.toUTCString() } });
    const err = await failure(provider().embed(["a"], never));
    expect(err.retryable).toBe(true);
    // An HTTP-date has whole seconds: up to a second earlier than `at`, less the time the call took.
    expect(err.retryAfterMs).toBeGreaterThan(100_000);
    expect(err.retryAfterMs).toBeLessThanOrEqual(120_000);
  });

  test("429 without Retry-After is retryable with no wait given", async () => {
    server.reply(openAiError(429, "requests", null, "slow down"));
    const err = await failure(provider().embed(["a"], never));
    expect(err.retryable).toBe(true);
    expect(err.retryAfterMs).toBeUndefined();
  });

  test("500 and 503 are retryable and carry what the server said", async () => {
    server.reply(openAiError(500, "server_error", null, "The server had an error while processing your request."), { status: 503, body: "" });
    const err500 = await failure(provider().embed(["a"], never));
    expect(err500.retryable).toBe(true);
    expect(err500.message).toContain("answered 500: The server had an error while processing your request. (type server_error)");
    const err503 = await failure(provider().embed(["a"], never));
    expect(err503.retryable).toBe(true);
    expect(err503.message).toMatch(/answered 503$/);
  });

  test("400 with OpenAI's error body is not retryable and says the provider's message", async () => {
    server.reply(openAiError(400, "invalid_request_error", "model_not_found", "The model `test-embed` does not exist."));
    const err = await failure(provider().embed(["a"], never));
    expect(err.retryable).toBe(false);
    expect(err.retryAfterMs).toBeUndefined();
    expect(err.message).toBe(
      `embedding provider ${new URL(server.baseUrl).origin} (model ${MODEL}): answered 400: The model \`test-embed\` does not exist. (type invalid_request_error, code model_not_found)`,
    );
  });

  test("TEI's and vLLM's error bodies are read too", async () => {
    server.reply(
      { status: 413, json: { error: "batch size 64 > maximum allowed batch size 32", error_type: "Validation" } },
      { status: 400, json: { object: "error", message: "This model's maximum context length is 512 tokens.", type: "BadRequestError", code: 400 } },
    );
    expect((await failure(provider().embed(["a"], never))).message).toContain("answered 413: batch size 64 > maximum allowed batch size 32");
    expect((await failure(provider().embed(["a"], never))).message).toContain("answered 400: This model's maximum context length is 512 tokens.");
  });

  test("a redirect is not followed (the key would go with it) and is not retryable", async () => {
    server.reply({ status: 307, headers: { location: "http://127.0.0.1:1/elsewhere" }, body: "" });
    const err = await failure(provider().embed(["a"], never));
    expect(err.retryable).toBe(false);
    expect(err.message).toContain("answered a redirect (307)");
    expect(server.requests).toHaveLength(1);
  });
});

describe("a server that does not answer", () => {
  test("a call past its timeout fails retryable", async () => {
    server.reply("hang");
    const err = await failure(provider({ timeoutMs: 200 }).embed(["a"], never));
    expect(err.retryable).toBe(true);
    expect(err.message).toContain("no answer within 200 ms");
  });

  test("the caller's abort ends a call in flight, retryable", async () => {
    server.reply("hang");
    const caller = new AbortController();
    const call = provider({ timeoutMs: 60_000 }).embed(["a"], caller.signal);
    await expect.poll(() => server.requests.length).toBe(1);
    caller.abort();
    const err = await failure(call);
    expect(err.retryable).toBe(true);
    expect(err.message).toContain("cancelled by the caller");
  });

  test("an aborted caller sends nothing", async () => {
    const err = await failure(provider().embed(["a"], AbortSignal.abort()));
    expect(err.retryable).toBe(true);
    expect(server.requests).toHaveLength(0);
  });

  test("a dropped connection and a refused one are retryable", async () => {
    server.reply("reset");
    const reset = await failure(provider().embed(["a"], never));
    expect(reset.retryable).toBe(true);
    expect(reset.message).toContain("cannot reach it");

    const down = await FakeEmbeddingsServer.start();
    const baseUrl = down.baseUrl;
    await down.close();
    const refused = await failure(provider({ baseUrl }).embed(["a"], never));
    expect(refused.retryable).toBe(true);
    expect(refused.message).toContain("cannot reach it: ECONNREFUSED");
  });
});

describe("answers that are not one finite vector per text", () => {
  test("vectors of another size than declared: not retryable, both sizes said", async () => {
    server.reply(answerWith([{ index: 0, embedding: fakeEmbedding("a", 768) }]));
    const err = await failure(provider().embed(["a"], never));
    expect(err.retryable).toBe(false);
    expect(err.message).toContain(`answered a vector of 768 dimensions, but the model is declared with ${DIMENSIONS}`);
  });

  const garbage: [string, FakeEmbeddingsReply, string][] = [
    ["a body that is not JSON", { body: "<html>Bad Gateway</html>" }, 'answered a body that is not JSON: "<html>Bad Gateway</html>"'],
    ["JSON cut short", { body: '{"data": [{"index": 0, "embedding": [0.1,' }, "answered a body that is not JSON"],
    ["an empty body", { body: "" }, "answered a body that is not JSON: (empty)"],
    ["JSON without data", { json: { object: "list" } }, 'answered JSON without a "data" array'],
    ["JSON null", { json: null }, 'answered JSON without a "data" array'],
    ["fewer vectors than texts", answerWith([{ index: 0, embedding: vector("a") }]), "answered 1 embeddings for 2 texts"],
    ["an index twice", answerWith([0, 0].map((index) => ({ index, embedding: vector("a") }))), "answered index 0 twice"],
    ["an index out of range", answerWith([0, 2].map((index) => ({ index, embedding: vector("a") }))), "answered data[1] with index 2, not one of 0..1"],
    ["a non-integer index", answerWith([{ index: 0, embedding: vector("a") }, { index: "1", embedding: vector("b") }]), 'answered data[1] with index "1"'],
    ["a vector that is a string", answerWith([0, 1].map((index) => ({ index, embedding: "AAAA" }))), "answered embedding 0 as a string, not an array of numbers"],
    ["a missing vector", answerWith([{ index: 0, embedding: vector("a") }, { index: 1 }]), "answered embedding 1 as nothing, not an array of numbers"],
    ["a null item", answerWith([null, { index: 1, embedding: vector("b") }]), "answered data[0] with index undefined"],
    ["a string in a vector", answerWith([0, 1].map((index) => ({ index, embedding: [...vector("a").slice(1), "NaN"] }))), 'answered embedding 0 with "NaN" at position 7, not a finite number'],
    ["null in a vector", answerWith([0, 1].map((index) => ({ index, embedding: [null, ...vector("a").slice(1)] }))), "answered embedding 0 with null at position 0, not a finite number"],
  ];
  test.each(garbage)("%s: retryable, said clearly", async (_, reply, message) => {
    server.reply(reply);
    const err = await failure(provider().embed(["a", "b"], never));
    expect(err.retryable).toBe(true);
    expect(err.message).toContain(message);
  });
});

describe("the API key", () => {
  test("appears in no error, log line or view of the provider, even where a server echoes it", async () => {
    const echoed = (request: { headers: Record<string, unknown> }) => `key was ${String(request.headers.authorization)}`;
    const replies: FakeEmbeddingsReply[] = [];
    server.handle((request) => replies.shift() ?? { status: 500, body: echoed(request) });
    const errors: EmbeddingError[] = [];
    const p = provider({ timeoutMs: 200 });
    const run = async (...scripted: FakeEmbeddingsReply[]) => {
      replies.push(...scripted);
      errors.push(await failure(p.embed(["a", "b"], never)));
    };
    await run(); // a text body quoting the Authorization header
    await run({ status: 401, json: { error: { message: `Incorrect API key provided: ${API_KEY}.`, type: "invalid_request_error", code: "invalid_api_key" } } });
    await run({ status: 400, json: { error: `bad key ${API_KEY}` } });
    await run({ status: 429, json: { message: API_KEY }, headers: { "retry-after": "1" } });
    await run({ body: `not json ${API_KEY}` });
    await run({ json: { data: [{ index: 0, embedding: API_KEY }, { index: 1, embedding: [] }] } });
    await run({ json: { data: [{ index: API_KEY, embedding: [] }, { index: 1, embedding: [] }] } });
    await run("hang");
    await run("reset");
    expect(errors).toHaveLength(9);
    // The requests did carry it: the key was there to leak.
    expect(server.requests.every((r) => r.headers.authorization === `Bearer ${API_KEY}`)).toBe(true);

    // One successful call, logged too.
    server.handle(undefined);
    await p.embed(["a"], never);
    expect(logged).toHaveLength(10);

    const azure = provider({ apiKeyHeader: "api-key" });
    const seen = [
      ...errors.flatMap((err) => [err.message, err.stack ?? "", inspect(err, { depth: 5 }), JSON.stringify(err)]),
      ...logged,
      inspect(p, { depth: 5, showHidden: true }),
      JSON.stringify(p),
      inspect(azure, { depth: 5, showHidden: true }),
      JSON.stringify(azure),
    ];
    for (const text of seen) {
      expect(text).not.toContain(API_KEY);
      expect(text).not.toContain("secret-0123456789");
    }
    // Redacted, not dropped: the error still says where the key was.
    expect(errors[1]?.message).toContain("Incorrect API key provided: [redacted].");
  });
});

describe("retryAfterMsOf", () => {
  const now = Date.parse("2026-12-07T00:00:00Z");
  const of = (headers: Record<string, string>) => retryAfterMsOf(new Headers(headers), now);

  test("reads seconds, HTTP-dates and retry-after-ms", () => {
    expect(of({ "retry-after": "20" })).toBe(20_000);
    expect(of({ "retry-after": "1.5" })).toBe(1500);
    expect(of({ "retry-after": "Mon, 07 Dec 2026 00:01:00 GMT" })).toBe(60_000);
    expect(of({ "retry-after-ms": "250", "retry-after": "1" })).toBe(250);
  });

  test("a past date is no wait; absent or unreadable values are none", () => {
    expect(of({ "retry-after": "Sun, 06 Dec 2026 23:00:00 GMT" })).toBe(0);
    expect(of({})).toBeUndefined();
    expect(of({ "retry-after": "soon" })).toBeUndefined();
    expect(of({ "retry-after": "-5" })).toBeUndefined();
  });
});
