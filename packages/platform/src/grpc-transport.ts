import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescMethod, type Message } from "@bufbuild/protobuf";
import { AnySchema, anyPack, type Any } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { once } from "node:events";
import { StatusSchema } from "@promptcraft/proto/google/rpc/status_pb";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import { InvalidArgumentError } from "./errors.js";
import type { ServiceRegistration } from "./handlers.js";
import type { Pipeline, TransportCall } from "./pipeline.js";

/**
 * Adds `registration` to a grpc-js server, dispatching every method through `pipeline`.
 *
 * Requests are deserialised inside the pipeline rather than by grpc-js, so that a malformed
 * message is INVALID_ARGUMENT (grpc-js would answer INTERNAL). Responses are serialised with
 * protobuf-es, the same code the Connect transport uses.
 */
export function addGrpcService(server: grpc.Server, registration: ServiceRegistration, pipeline: Pipeline): void {
  const definition: Record<string, grpc.MethodDefinition<Buffer, Message>> = {};
  const implementation: grpc.UntypedServiceImplementation = {};
  for (const method of registration.service.methods) {
    definition[method.localName] = {
      path: `/${registration.service.typeName}/${method.name}`,
      requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      requestSerialize: (bytes: Buffer) => bytes,
      requestDeserialize: (bytes: Buffer) => bytes,
      responseSerialize: (message: Message) => asBuffer(toBinary(method.output, message)),
      responseDeserialize: (bytes: Buffer) => fromBinary(method.output, bytes),
      originalName: method.localName,
    };
    implementation[method.localName] = handlerFor(registration, method, pipeline);
  }
  server.addService(definition, implementation);
}

function handlerFor(registration: ServiceRegistration, method: DescMethod, pipeline: Pipeline): grpc.UntypedHandleCall {
  switch (method.methodKind) {
    case "unary":
      return (call: grpc.ServerUnaryCall<Buffer, Message>, callback: grpc.sendUnaryData<Message>) => {
        const transport = new GrpcCall(call);
        const ctx = pipeline.context(registration, method, transport);
        respondWith(transport, callback, pipeline.runUnary(ctx, () => decode(method, call.request)));
      };
    case "server_streaming":
      return (call: grpc.ServerWritableStream<Buffer, Message>) => {
        const transport = new GrpcCall(call);
        const ctx = pipeline.context(registration, method, transport);
        endWith(call, writeAll(call, pipeline.runServerStream(ctx, () => decode(method, call.request)), transport), transport);
      };
    case "client_streaming":
      return (call: grpc.ServerReadableStream<Buffer, Message>, callback: grpc.sendUnaryData<Message>) => {
        const transport = new GrpcCall(call);
        const ctx = pipeline.context(registration, method, transport);
        respondWith(transport, callback, pipeline.runClientStream(ctx, decodeAll(method, call)));
      };
    case "bidi_streaming":
      return (call: grpc.ServerDuplexStream<Buffer, Message>) => {
        const transport = new GrpcCall(call);
        const ctx = pipeline.context(registration, method, transport);
        endWith(call, writeAll(call, pipeline.runBidiStream(ctx, decodeAll(method, call)), transport), transport);
      };
  }
}

/** Answers a unary or client-streaming call with the response, or the error's status. */
function respondWith(transport: GrpcCall, callback: grpc.sendUnaryData<Message>, response: Promise<Message>): void {
  response.then(
    (message) => {
      transport.finish();
      callback(null, message);
    },
    (err: unknown) => {
      transport.finish();
      callback(toStatus(err));
    },
  );
}

/** Ends a server stream with OK, or with the error's status. */
function endWith(call: grpc.ServerWritableStream<Buffer, Message> | grpc.ServerDuplexStream<Buffer, Message>, done: Promise<void>, transport: GrpcCall): void {
  done.then(
    () => {
      transport.finish();
      call.end();
    },
    (err: unknown) => {
      transport.finish();
      call.emit("error", toStatus(err));
    },
  );
}

/** One gRPC call as the pipeline sees it; headers are sent right before the first message or the status. */
class GrpcCall implements TransportCall {
  readonly protocol = "grpc" as const;
  readonly deadline: number | undefined;
  private controller: AbortController | undefined;
  private responseHeaders: grpc.Metadata | undefined;
  private finished = false;

  constructor(private readonly call: GrpcCallObject) {
    const deadline = call.getDeadline();
    this.deadline = deadline instanceof Date ? deadline.getTime() : Number.isFinite(deadline) ? deadline : undefined;
  }
  get peer(): string | undefined {
    return this.call.getPeer();
  }
  header(name: string): string | undefined {
    const value = this.call.metadata.get(name)[0];
    return typeof value === "string" ? value : undefined;
  }
  setResponseHeader(name: string, value: string): void {
    (this.responseHeaders ??= new grpc.Metadata()).set(name, value);
  }
  signal(): AbortSignal {
    if (!this.controller) {
      // Made on demand (every call that touches the database asks). grpc-js emits "cancelled" when
      // any call's stream closes, also after it answered: only an unanswered call is aborted, so
      // that no abort reason (an Error, with its stack) is built for calls that went well.
      const controller = (this.controller = new AbortController());
      const cancelled = () => {
        if (!this.finished) controller.abort(this.abortReason());
      };
      (this.call as grpc.ServerUnaryCall<Buffer, Message>).once("cancelled", cancelled);
      if (this.call.cancelled) cancelled();
    }
    return this.controller.signal;
  }
  /** The call has its outcome: sends the headers set so far; a later "cancelled" aborts nothing. */
  finish(): void {
    this.finished = true;
    this.flushHeaders();
  }
  /** grpc-js cancels a call whose deadline passed (after answering DEADLINE_EXCEEDED), whose client cancelled, or at a forced shutdown. */
  private abortReason(): ConnectError {
    return this.deadline !== undefined && Date.now() >= this.deadline
      ? new ConnectError("the deadline passed", Code.DeadlineExceeded)
      : new ConnectError("the call was cancelled", Code.Canceled);
  }
  /** Sends the headers set so far, once. */
  flushHeaders(): void {
    if (this.responseHeaders && !this.call.cancelled) this.call.sendMetadata(this.responseHeaders);
    this.responseHeaders = undefined;
  }
}

type GrpcCallObject =
  | grpc.ServerUnaryCall<Buffer, Message>
  | grpc.ServerReadableStream<Buffer, Message>
  | grpc.ServerWritableStream<Buffer, Message>
  | grpc.ServerDuplexStream<Buffer, Message>;

function decode(method: DescMethod, bytes: Buffer): Message {
  try {
    return fromBinary(method.input, bytes);
  } catch (err) {
    throw new InvalidArgumentError(
      { field: "(message)", description: `cannot decode ${method.input.typeName}: ${(err as Error).message}` },
      { reason: ErrorReason.MALFORMED_MESSAGE },
    );
  }
}

async function* decodeAll(
  method: DescMethod,
  call: grpc.ServerReadableStream<Buffer, Message> | grpc.ServerDuplexStream<Buffer, Message>,
): AsyncGenerator<Message> {
  // A plain `for await` destroys the stream when the loop ends, which on a duplex call also kills
  // the sending half before the status goes out.
  for await (const bytes of call.iterator({ destroyOnReturn: false })) yield decode(method, bytes as Buffer);
}

async function writeAll(
  call: grpc.ServerWritableStream<Buffer, Message> | grpc.ServerDuplexStream<Buffer, Message>,
  messages: AsyncIterable<Message>,
  transport: GrpcCall,
): Promise<void> {
  for await (const message of messages) {
    if (call.cancelled) return;
    transport.flushHeaders();
    // Respect backpressure: a slow reader must not make us buffer an unbounded stream.
    if (!call.write(message)) await once(call, "drain");
  }
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * A ConnectError as a grpc-js status, with its details in `grpc-status-details-bin` (a binary
 * `google.rpc.Status`), the way every gRPC implementation reads rich errors.
 */
export function toStatus(err: unknown): Partial<grpc.StatusObject> {
  const error = err instanceof ConnectError ? err : new ConnectError("internal error", Code.Internal);
  const metadata = new grpc.Metadata();
  error.metadata.forEach((value, key) => {
    if (!key.endsWith("-bin")) metadata.set(key, value);
  });
  if (error.details.length > 0) {
    const details: Any[] = error.details.map((detail) =>
      "desc" in detail
        ? anyPack(detail.desc, create(detail.desc, detail.value))
        : create(AnySchema, { typeUrl: `type.googleapis.com/${detail.type}`, value: detail.value }),
    );
    const status = create(StatusSchema, { code: error.code, message: error.rawMessage, details });
    metadata.set("grpc-status-details-bin", asBuffer(toBinary(StatusSchema, status)));
  }
  return { code: error.code as number, details: error.rawMessage, metadata };
}

