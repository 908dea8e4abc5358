import { createHash } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";

/** One request the fake received, as the provider sent it. */
export interface FakeEmbeddingsRequest {
  method: string;
  /** Path without the query, e.g. `/v1/embeddings`. */
  path: string;
  query: URLSearchParams;
  headers: http.IncomingHttpHeaders;
  /** The parsed JSON body (`undefined` when it was not JSON). */
  body: unknown;
}

/**
 * What the fake answers one request with: a JSON body, a raw body (for garbage answers), `hang` (read
 * the request and never answer, like a stuck upstream), `stall` (send the status and the start of a body,
 * then nothing more) or `reset` (drop the connection).
 */
export type FakeEmbeddingsReply =
  | { status?: number; headers?: Record<string, string>; json: unknown }
  | { status?: number; headers?: Record<string, string>; body: string }
  | "hang"
  | "stall"
  | "reset";

export type FakeEmbeddingsHandler = (request: FakeEmbeddingsRequest) => FakeEmbeddingsReply | Promise<FakeEmbeddingsReply>;

/**
 * A local HTTP server that speaks the OpenAI embeddings API (`POST /v1/embeddings`), for tests of
 * the OpenAI-compatible provider and of the pipeline's fault handling. By default it embeds each input
 * deterministically ({@link fakeEmbedding}) at the size asked (`dimensions` in the body, else the
 * server's), checks a Bearer key when given one, and answers OpenAI's error bodies otherwise. Tests
 * script other answers with {@link reply} (the next requests, in order) or {@link handle} (all of
 * them); every request is recorded in {@link requests}, and {@link nextRequest} waits for one.
 */
export class FakeEmbeddingsServer {
  readonly requests: FakeEmbeddingsRequest[] = [];
  private readonly queued: FakeEmbeddingsReply[] = [];
  private handler: FakeEmbeddingsHandler | undefined;
  private readonly waiters: ((request: FakeEmbeddingsRequest) => void)[] = [];

  private constructor(
    private readonly server: http.Server,
    private readonly options: { dimensions: number; apiKey?: string },
  ) {}

  /** Starts on a free port of 127.0.0.1. */
  static async start(options: { dimensions?: number; apiKey?: string } = {}): Promise<FakeEmbeddingsServer> {
    const server = http.createServer();
    const fake = new FakeEmbeddingsServer(server, { dimensions: options.dimensions ?? 8, apiKey: options.apiKey });
    server.on("request", (req, res) => void fake.serve(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    return fake;
  }

  /** The OpenAI-style base URL, `http://127.0.0.1:<port>/v1`; the provider posts to `<it>/embeddings`. */
  get baseUrl(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/v1`;
  }

  /** Answers the next requests with `replies`, one each, in order; then the default (or {@link handle}) again. */
  reply(...replies: FakeEmbeddingsReply[]): void {
    this.queued.push(...replies);
  }

  /** Answers every request (after the queued {@link reply} ones) with `handler`; `undefined` restores the default. */
  handle(handler: FakeEmbeddingsHandler | undefined): void {
    this.handler = handler;
  }

  /** The next request to arrive (e.g. to abort a call once it is in flight). */
  nextRequest(): Promise<FakeEmbeddingsRequest> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** The default answer to `request`: vectors for its inputs, or the error OpenAI would give. */
  defaultReply(request: FakeEmbeddingsRequest): FakeEmbeddingsReply {
    if (this.options.apiKey !== undefined && request.headers.authorization !== `Bearer ${this.options.apiKey}`) {
      return openAiError(401, "invalid_request_error", "invalid_api_key", "Incorrect API key provided.");
    }
    if (request.method !== "POST" || request.path !== "/v1/embeddings") {
      return openAiError(404, "invalid_request_error", null, `Unknown request URL: ${request.method} ${request.path}.`);
    }
    const body = request.body as { model?: unknown; input?: unknown; dimensions?: unknown } | undefined;
    const inputs = typeof body?.input === "string" ? [body.input] : body?.input;
    if (!Array.isArray(inputs) || !inputs.every((input): input is string => typeof input === "string" && input !== "")) {
      return openAiError(400, "invalid_request_error", null, "'$.input' is invalid. Please check the API reference.");
    }
    const dimensions = typeof body?.dimensions === "number" ? body.dimensions : this.options.dimensions;
    return { json: embeddingsAnswer(String(body?.model), inputs.map((text) => fakeEmbedding(text, dimensions))) };
  }

  /** Stops listening and drops open connections (a hanging request among them). */
  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async serve(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const url = new URL(req.url ?? "/", "http://fake");
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {
      body = undefined;
    }
    const request: FakeEmbeddingsRequest = { method: req.method ?? "", path: url.pathname, query: url.searchParams, headers: req.headers, body };
    this.requests.push(request);
    for (const resolve of this.waiters.splice(0)) resolve(request);
    const reply = this.queued.shift() ?? (await (this.handler ?? ((r) => this.defaultReply(r)))(request));
    if (reply === "hang") return;
    if (reply === "stall") {
      res.writeHead(200, { "content-type": "application/json" });
      res.write('{"object": "list", "data": [');
      return;
    }
    if (reply === "reset") {
      req.socket.destroy();
      return;
    }
    const text = "json" in reply ? JSON.stringify(reply.json) : reply.body;
    res.writeHead(reply.status ?? 200, { "content-type": "json" in reply ? "application/json" : "text/plain", ...reply.headers });
    res.end(text);
  }
}

/** OpenAI's answer to an embeddings request: `data[i] = {object, index: i, embedding}`, with usage. */
export function embeddingsAnswer(model: string, vectors: readonly (readonly number[])[]): unknown {
  return {
    object: "list",
    model,
    data: vectors.map((embedding, index) => ({ object: "embedding", index, embedding })),
    usage: { prompt_tokens: vectors.length, total_tokens: vectors.length },
  };
}

/** OpenAI's error body, `{error: {message, type, param, code}}`, with its status. */
export function openAiError(status: number, type: string, code: string | null, message: string): { status: number; json: unknown } {
  return { status, json: { error: { message, type, param: null, code } } };
}

/** A deterministic unit vector for `text` (from its SHA-256), so tests can tell which text a vector belongs to. */
export function fakeEmbedding(text: string, dimensions: number): number[] {
  const values: number[] = [];
  for (let block = 0; values.length < dimensions; block++) {
    const digest = createHash("sha256").update(`${block}:${text}`).digest();
    for (let i = 0; i + 1 < digest.length && values.length < dimensions; i += 2) values.push(digest.readInt16BE(i) / 32768);
  }
  const norm = Math.hypot(...values) || 1;
  return values.map((v) => v / norm);
}
