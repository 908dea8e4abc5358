import type { DescService, Message } from "@bufbuild/protobuf";
import { createContextKey, createContextValues, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import type { Protocol } from "./context.js";
import type { ServiceRegistration } from "./handlers.js";
import type { Pipeline, TransportCall } from "./pipeline.js";

/** A Node request handler for HTTP/1.1 and HTTP/2 alike (connect-node's handler type). */
export type NodeHandler = ReturnType<typeof connectNodeAdapter>;

/** A plain HTTP route on the Connect port (metrics, health probe, JWKS…). */
export type HttpRoute = NodeHandler;

const peerKey = createContextKey<string | undefined>(undefined, { description: "client address" });

/**
 * The Connect, gRPC-Web and gRPC protocols (connect-node) for `registrations`, as a Node request
 * handler. Every method dispatches through `pipeline`, so behaviour matches the grpc-js port.
 */
export function connectHandler(
  registrations: readonly ServiceRegistration[],
  pipeline: Pipeline,
  routes: Record<string, HttpRoute>,
): NodeHandler {
  return connectNodeAdapter({
    connect: true,
    grpcWeb: true,
    grpc: true,
    // 16 MiB, the same limit as the gRPC port.
    readMaxBytes: 16 * 1024 * 1024,
    contextValues: (req) => createContextValues().set(peerKey, peerOf(req.socket)),
    routes: (router) => {
      for (const registration of registrations) {
        router.service(registration.service, implementationOf(registration, pipeline));
      }
    },
    fallback: (req, res) => {
      const path = (req.url ?? "/").split("?")[0] ?? "/";
      const route = routes[path];
      if (route) return route(req, res);
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8" });
      res.end(`no route for ${path}\n`);
    },
  });
}

function peerOf(socket: net.Socket | undefined): string | undefined {
  return socket?.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : undefined;
}

function implementationOf(registration: ServiceRegistration, pipeline: Pipeline): ServiceImpl<DescService> {
  const impl: Record<string, unknown> = {};
  for (const method of registration.service.methods) {
    const ctxOf = (hctx: HandlerContext) => pipeline.context(registration, method, new ConnectCall(hctx));
    switch (method.methodKind) {
      case "unary":
        impl[method.localName] = (request: Message, hctx: HandlerContext) => pipeline.runUnary(ctxOf(hctx), request);
        break;
      case "server_streaming":
        impl[method.localName] = (request: Message, hctx: HandlerContext) => pipeline.runServerStream(ctxOf(hctx), request);
        break;
      case "client_streaming":
        impl[method.localName] = (requests: AsyncIterable<Message>, hctx: HandlerContext) => pipeline.runClientStream(ctxOf(hctx), requests);
        break;
      case "bidi_streaming":
        impl[method.localName] = (requests: AsyncIterable<Message>, hctx: HandlerContext) => pipeline.runBidiStream(ctxOf(hctx), requests);
        break;
    }
  }
  return impl as ServiceImpl<DescService>;
}

/** One Connect / gRPC-Web / gRPC call on the Connect port, as the pipeline sees it. */
class ConnectCall implements TransportCall {
  readonly deadline: number | undefined;

  constructor(private readonly hctx: HandlerContext) {
    const timeout = hctx.timeoutMs();
    this.deadline = timeout === undefined ? undefined : Date.now() + timeout;
  }
  get protocol(): Protocol {
    return this.hctx.protocolName as Protocol;
  }
  get peer(): string | undefined {
    return this.hctx.values.get(peerKey);
  }
  header(name: string): string | undefined {
    return this.hctx.requestHeader.get(name) ?? undefined;
  }
  setResponseHeader(name: string, value: string): void {
    this.hctx.responseHeader.set(name, value);
  }
  signal(): AbortSignal {
    return this.hctx.signal;
  }
}

/** A listening HTTP server that speaks HTTP/1.1 and cleartext HTTP/2 on one port. */
export interface DualProtocolServer {
  readonly port: number;
  /** Stops accepting, lets in-flight requests finish within `graceMs`, then drops the rest. */
  close(graceMs: number): Promise<void>;
}

const HTTP2_PREFACE_START = "PRI"; // no HTTP/1.x method is PRI

/**
 * Listens on `host:port` and routes each connection by its first bytes: the HTTP/2 client
 * preface goes to an h2c server, anything else to an HTTP/1.1 server. A plain h2c server refuses
 * HTTP/1.1 clients (curl without --http2-prior-knowledge, browsers' fetch through most proxies),
 * and Connect must serve both.
 */
export async function listenDualProtocol(
  handler: NodeHandler,
  host: string,
  port: number,
): Promise<DualProtocolServer> {
  let inFlight = 0;
  let idle: (() => void) | undefined;
  const counted: NodeHandler = (req, res) => {
    inFlight++;
    res.once("close", () => {
      inFlight--;
      if (inFlight === 0) idle?.();
    });
    handler(req, res);
  };
  const h1 = http.createServer({ keepAliveTimeout: 65_000 }, counted as http.RequestListener);
  const h2 = http2.createServer({}, counted as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void);
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.Http2Session>();
  h2.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });

  const front = net.createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      if (head.length < HTTP2_PREFACE_START.length && HTTP2_PREFACE_START.startsWith(head.toString("latin1"))) return;
      socket.off("data", onData);
      socket.pause();
      socket.unshift(head);
      if (head.toString("latin1", 0, 3) === HTTP2_PREFACE_START) {
        // The HTTP/2 session reads the unshifted bytes itself on the next tick; resuming here
        // would let them flow to no listener and lose the preface.
        h2.emit("connection", socket);
      } else {
        h1.emit("connection", socket);
        socket.resume();
      }
    };
    socket.on("data", onData);
    socket.on("error", () => socket.destroy());
  });

  await new Promise<void>((resolve, reject) => {
    front.once("error", reject);
    front.listen(port, host, () => {
      front.off("error", reject);
      resolve();
    });
  });
  const address = front.address() as net.AddressInfo;

  return {
    port: address.port,
    async close(graceMs) {
      const closed = new Promise<void>((resolve) => front.close(() => resolve()));
      for (const session of sessions) session.close(); // GOAWAY: no new streams, finish current ones
      h1.closeIdleConnections();
      if (inFlight > 0) {
        await Promise.race([
          new Promise<void>((resolve) => (idle = resolve)),
          new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref()),
        ]);
      }
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}
