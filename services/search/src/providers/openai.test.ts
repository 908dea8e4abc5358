import assert from "node:assert/strict";
import { inspect } from "node:util";
import type { Logger } from "@promptcraft/platform";
import { embeddingsAnswer, FakeEmbeddingsServer, fakeEmbedding, openAiError, type FakeEmbeddingsReply } from "@promptcraft/testing";
import { afterAll, afterEach, beforeAll, describe, test } from "vitest";
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
  assert.ok(err instanceof EmbeddingError, `expected an EmbeddingError, got ${String(err)}`);
  return err;
}

function includes(text: string, part: string): void {
  assert.ok(text.includes(part), `expected ${JSON.stringify(text)} to include ${JSON.stringify(part)}`);
}

function excludes(text: string, part: string): void {
  assert.ok(!text.includes(part), `expected ${JSON.stringify(text)} not to include ${JSON.stringify(part)}`);
}

/** An answer whose `data` items are `items` (the rest as OpenAI gives it). */
function answerWith(items: unknown[]): FakeEmbeddingsReply {
  return { json: { object: "list", model: MODEL, data: items, usage: { prompt_tokens: 1, total_tokens: 1 } } };
}

const vector = (text: string) => fakeEmbedding(text, DIMENSIONS);

describe("a well-formed answer", () => {
  test("gives one vector per text, in the order given, from an OpenAI-shaped request", async () => {
    const texts = ["alpha", "beta", "gamma"];
    assert.deepEqual(await provider().embed(texts, never), texts.map(vector));
    const [request] = server.requests;
    assert.equal(request?.method, "POST");
    assert.equal(request?.path, "/v1/embeddings");
    assert.equal(request?.headers.authorization, `Bearer ${API_KEY}`);
    assert.equal(request?.headers["content-type"], "application/json");
    // `dimensions` only goes to models that can shorten their vectors.
    assert.deepEqual(request?.body, { model: MODEL, input: texts, encoding_format: "float" });
  });

  test("is put back in input order by `index` when the server answers out of order", async () => {
    const texts = ["one", "two", "three", "four"];
    server.reply(answerWith([3, 1, 0, 2].map((index) => ({ object: "embedding", index, embedding: vector(texts[index]!) }))));
    assert.deepEqual(await provider().embed(texts, never), texts.map(vector));
  });

  test("is read in order when the server leaves every index out", async () => {
    const texts = ["one", "two"];
    server.reply(answerWith(texts.map((text) => ({ embedding: vector(text) }))));
    assert.deepEqual(await provider().embed(texts, never), texts.map(vector));
  });

  test("asks text-embedding-3 models for the declared size", async () => {
    const shortened = createOpenAiProvider({ baseUrl: server.baseUrl, model: "text-embedding-3-small", dimensions: 4, apiKey: API_KEY });
    assert.deepEqual(await shortened.embed(["x"], never), [fakeEmbedding("x", 4)]);
    assert.deepEqual(server.requests[0]?.body, { model: "text-embedding-3-small", input: ["x"], dimensions: 4, encoding_format: "float" });
  });

  test("speaks Azure OpenAI: the key in `api-key`, the api-version in the query, the deployment in the path", async () => {
    server.handle((request) => ({ json: embeddingsAnswer("azure", (request.body as { input: string[] }).input.map(vector)) }));
    const azure = provider({ baseUrl: `${server.baseUrl}/openai/deployments/my-deployment/`, apiKeyHeader: "api-key", apiVersion: "2024-10-21" });
    assert.deepEqual(await azure.embed(["hello"], never), [vector("hello")]);
    const [request] = server.requests;
    assert.equal(request?.path, "/v1/openai/deployments/my-deployment/embeddings");
    assert.equal(request?.query.get("api-version"), "2024-10-21");
    assert.equal(request?.headers["api-key"], API_KEY);
    assert.equal(request?.headers.authorization, undefined);
  });

  test("needs no key (Ollama, a local TEI)", async () => {
    server.handle((request) => ({ json: embeddingsAnswer(MODEL, (request.body as { input: string[] }).input.map(vector)) }));
    assert.deepEqual(await provider({ apiKey: undefined }).embed(["a"], never), [vector("a")]);
    assert.equal(server.requests[0]?.headers.authorization, undefined);
  });

  test("the provider says its model, size and batch limit", () => {
    const { model, dimensions, maxBatch } = provider({ maxBatch: 7 });
    assert.deepEqual({ model, dimensions, maxBatch }, { model: MODEL, dimensions: DIMENSIONS, maxBatch: 7 });
  });
});

describe("input limits", () => {
  test("a full batch is one request; a larger one is refused before sending", async () => {
    const small = provider({ maxBatch: 4 });
    const texts = ["a", "b", "c", "d"];
    assert.deepEqual(await small.embed(texts, never), texts.map(vector));
    assert.equal(server.requests.length, 1);
    assert.deepEqual((server.requests[0]?.body as { input: string[] }).input, texts);

    const err = await failure(small.embed([...texts, "e"], never));
    assert.equal(err.retryable, false);
    includes(err.message, "5 texts in one call, more than its limit of 4");
    assert.equal(server.requests.length, 1);
  });

  test("an oversized or empty text is refused before sending, naming it", async () => {
    const tooLong = await failure(provider({ maxTextChars: 10 }).embed(["short", "x".repeat(11)], never));
    assert.equal(tooLong.retryable, false);
    includes(tooLong.message, "text 1 has 11 characters, more than the limit of 10");

    const empty = await failure(provider().embed(["fine", ""], never));
    assert.equal(empty.retryable, false);
    includes(empty.message, "text 1 is empty");
    assert.equal(server.requests.length, 0);
  });

  test("no texts: no request", async () => {
    assert.deepEqual(await provider().embed([], never), []);
    assert.equal(server.requests.length, 0);
  });
});

describe("errors the provider answers", () => {
  test("429 with Retry-After in seconds is retryable after that long", async () => {
    server.reply({ ...openAiError(429, "requests", "rate_limit_exceeded", "Rate limit reached for requests"), headers: { "retry-after": "3" } });
    const err = await failure(provider().embed(["a"], never));
    assert.equal(err.retryable, true);
    assert.equal(err.retryAfterMs, 3000);
    includes(err.message, "answered 429: Rate limit reached for requests (type requests, code rate_limit_exceeded)");
  });

  test("429 with Retry-After as an HTTP-date is retryable until that date", async () => {
    const at = new Date(Date.now() + 120_000);
    server.reply({ ...openAiError(429, "requests", null, "slow down"), headers: { "retry-after": at.toUTCString() } });
    const err = await failure(provider().embed(["a"], never));
    assert.equal(err.retryable, true);
    // An HTTP-date has whole seconds: up to a second earlier than `at`, less the time the call took.
    assert.ok(err.retryAfterMs !== undefined && err.retryAfterMs > 100_000 && err.retryAfterMs <= 120_000, `retryAfterMs ${err.retryAfterMs}`);
  });

  test("429 without Retry-After is retryable with no wait given", async () => {
    server.reply(openAiError(429, "requests", null, "slow down"));
    const err = await failure(provider().embed(["a"], never));
    assert.equal(err.retryable, true);
    assert.equal(err.retryAfterMs, undefined);
  });

  test("500 and 503 are retryable and carry what the server said", async () => {
    server.reply(openAiError(500, "server_error", null, "The server had an error while processing your request."), { status: 503, body: "" });
    const err500 = await failure(provider().embed(["a"], never));
    assert.equal(err500.retryable, true);
    includes(err500.message, "answered 500: The server had an error while processing your request. (type server_error)");
    const err503 = await failure(provider().embed(["a"], never));
    assert.equal(err503.retryable, true);
    assert.match(err503.message, /answered 503$/);
  });

  test("400 with OpenAI's error body is not retryable and says the provider's message", async () => {
    server.reply(openAiError(400, "invalid_request_error", "model_not_found", "The model `test-embed` does not exist."));
    const err = await failure(provider().embed(["a"], never));
    assert.equal(err.retryable, false);
    assert.equal(err.retryAfterMs, undefined);
    assert.equal(err.message,
      `embedding provider ${new URL(server.baseUrl).origin} (model ${MODEL}): answered 400: The model \`test-embed\` does not exist. (type invalid_request_error, code model_not_found)`,
    );
  });

  test("TEI's and vLLM's error bodies are read too", async () => {
    server.reply(
      { status: 413, json: { error: "batch size 64 > maximum allowed batch size 32", error_type: "Validation" } },
      { status: 400, json: { object: "error", message: "This model's maximum context length is 512 tokens.", type: "BadRequestError", code: 400 } },
    );
    includes((await failure(provider().embed(["a"], never))).message, "answered 413: batch size 64 > maximum allowed batch size 32");
    includes((await failure(provider().embed(["a"], never))).message, "answered 400: This model's maximum context length is 512 tokens.");
  });

  test("a redirect is not followed (the key would go with it) and is not retryable", async () => {
    server.reply({ status: 307, headers: { location: "http://127.0.0.1:1/elsewhere" }, body: "" });
    const err = await failure(provider().embed(["a"], never));
    assert.equal(err.retryable, false);
    includes(err.message, "answered a redirect (307)");
    assert.equal(server.requests.length, 1);
  });
});

describe("a server that does not answer", () => {
  test("a call past its timeout fails retryable", async () => {
    server.reply("hang");
    const err = await failure(provider({ timeoutMs: 200 }).embed(["a"], never));
    assert.equal(err.retryable, true);
    includes(err.message, "no answer within 200 ms");
  });

  test("the timeout covers the whole answer, not just its start", async () => {
    server.reply("stall");
    const err = await failure(provider({ timeoutMs: 200 }).embed(["a"], never));
    assert.equal(err.retryable, true);
    includes(err.message, "no answer within 200 ms");
  });

  test("the caller's abort ends a call in flight, retryable", async () => {
    server.reply("hang");
    const caller = new AbortController();
    const arrived = server.nextRequest();
    const call = provider({ timeoutMs: 60_000 }).embed(["a"], caller.signal);
    await arrived;
    caller.abort();
    const err = await failure(call);
    assert.equal(err.retryable, true);
    includes(err.message, "cancelled by the caller");
  });

  test("an aborted caller sends nothing", async () => {
    const err = await failure(provider().embed(["a"], AbortSignal.abort()));
    assert.equal(err.retryable, true);
    assert.equal(server.requests.length, 0);
  });

  test("a dropped connection and a refused one are retryable", async () => {
    server.reply("reset");
    const reset = await failure(provider().embed(["a"], never));
    assert.equal(reset.retryable, true);
    includes(reset.message, "cannot reach it");

    const down = await FakeEmbeddingsServer.start();
    const baseUrl = down.baseUrl;
    await down.close();
    const refused = await failure(provider({ baseUrl }).embed(["a"], never));
    assert.equal(refused.retryable, true);
    includes(refused.message, "cannot reach it: ECONNREFUSED");
  });
});

describe("answers that are not one finite vector per text", () => {
  test("vectors of another size than declared: not retryable, both sizes said", async () => {
    server.reply(answerWith([{ index: 0, embedding: fakeEmbedding("a", 768) }]));
    const err = await failure(provider().embed(["a"], never));
    assert.equal(err.retryable, false);
    includes(err.message, `answered a vector of 768 dimensions, but the model is declared with ${DIMENSIONS}`);
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
    assert.equal(err.retryable, true);
    includes(err.message, message);
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
    assert.equal(errors.length, 9);
    // The requests did carry it: the key was there to leak.
    assert.equal(server.requests.every((r) => r.headers.authorization === `Bearer ${API_KEY}`), true);

    // One successful call, logged too.
    server.handle(undefined);
    await p.embed(["a"], never);
    assert.equal(logged.length, 10);

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
      excludes(text, API_KEY);
      excludes(text, "secret-0123456789");
    }
    // Redacted, not dropped: the error still says where the key was.
    includes(errors[1]!.message, "Incorrect API key provided: [redacted].");
  });
});

describe("retryAfterMsOf", () => {
  const now = Date.parse("2026-12-07T00:00:00Z");
  const of = (headers: Record<string, string>) => retryAfterMsOf(new Headers(headers), now);

  test("reads seconds, HTTP-dates and retry-after-ms", () => {
    assert.equal(of({ "retry-after": "20" }), 20_000);
    assert.equal(of({ "retry-after": "1.5" }), 1500);
    assert.equal(of({ "retry-after": "Mon, 07 Dec 2026 00:01:00 GMT" }), 60_000);
    assert.equal(of({ "retry-after-ms": "250", "retry-after": "1" }), 250);
  });

  test("a past date is no wait; absent or unreadable values are none", () => {
    assert.equal(of({ "retry-after": "Sun, 06 Dec 2026 23:00:00 GMT" }), 0);
    assert.equal(of({}), undefined);
    assert.equal(of({ "retry-after": "soon" }), undefined);
    assert.equal(of({ "retry-after": "-5" }), undefined);
  });
});
