import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescMethod, type Message } from "@bufbuild/protobuf";
import { AnySchema, anyPack, type Any } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { once } from "node:events";
import { StatusSchema } from "@promptcraft/proto/google/rpc/status_pb";
import type { CallContext } from "./context.js";
import { InvalidArgumentError } from "./errors.js";
import type { ServiceRegistration } from "./handlers.js";
import type { Pipeline } from "./pipeline.js";

type GrpcCall =
  | grpc.ServerUnaryCall<Buffer, Message>
  | grpc.ServerReadableStream<Buffer, Message>
  | grpc.ServerWritableStream<Buffer, Message>
  | grpc.ServerDuplexStream<Buffer, Message>;

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
        const { ctx, flushHeaders } = contextOf(registration, method, pipeline, call);
        decode(method, call.request)
          .then((request) => pipeline.runUnary(ctx, request))
          .then(
            (response) => {
              flushHeaders();
              callback(null, response);
            },
            (err: unknown) => {
              flushHeaders();
              callback(toStatus(err));
            },
          );
      };
    case "server_streaming":
      return (call: grpc.ServerWritableStream<Buffer, Message>) => {
        const { ctx, flushHeaders } = contextOf(registration, method, pipeline, call);
        const run = async () => writeAll(call, pipeline.runServerStream(ctx, await decode(method, call.request)), flushHeaders);
        endWith(call, run(), flushHeaders);
      };
    case "client_streaming":
      return (call: grpc.ServerReadableStream<Buffer, Message>, callback: grpc.sendUnaryData<Message>) => {
        const { ctx, flushHeaders } = contextOf(registration, method, pipeline, call);
        pipeline.runClientStream(ctx, decodeAll(method, call)).then(
          (response) => {
            flushHeaders();
            callback(null, response);
          },
          (err: unknown) => {
            flushHeaders();
            callback(toStatus(err));
          },
        );
      };
    case "bidi_streaming":
      return (call: grpc.ServerDuplexStream<Buffer, Message>) => {
        const { ctx, flushHeaders } = contextOf(registration, method, pipeline, call);
        endWith(call, writeAll(call, pipeline.runBidiStream(ctx, decodeAll(method, call)), flushHeaders), flushHeaders);
      };
  }
}

/** Ends a server stream with OK, or with the error's status. */
function endWith(call: grpc.ServerWritableStream<Buffer, Message> | grpc.ServerDuplexStream<Buffer, Message>, done: Promise<void>, flushHeaders: () => void): void {
  done.then(
    () => {
      flushHeaders();
      call.end();
    },
    (err: unknown) => {
      flushHeaders();
      call.emit("error", toStatus(err));
    },
  );
}

function contextOf(
  registration: ServiceRegistration,
  method: DescMethod,
  pipeline: Pipeline,
  call: GrpcCall,
): { ctx: CallContext; flushHeaders: () => void } {
  const controller = new AbortController();
  (call as grpc.ServerUnaryCall<Buffer, Message>).once("cancelled", () => controller.abort());
  const deadline = call.getDeadline();
  const deadlineMs = deadline instanceof Date ? deadline.getTime() : Number.isFinite(deadline) ? deadline : undefined;
  // grpc-js sends headers once; collect them and send right before the first message or status.
  let responseHeaders: grpc.Metadata | undefined;
  const ctx = pipeline.context({
    registration,
    method,
    protocol: "grpc",
    header: (name) => {
      const value = call.metadata.get(name)[0];
      return typeof value === "string" ? value : undefined;
    },
    setResponseHeader: (name, value) => (responseHeaders ??= new grpc.Metadata()).set(name, value),
    signal: controller.signal,
    deadline: deadlineMs,
    peer: call.getPeer(),
  });
  const flushHeaders = () => {
    if (responseHeaders && !call.cancelled) call.sendMetadata(responseHeaders);
    responseHeaders = undefined;
  };
  return { ctx, flushHeaders };
}

async function decode(method: DescMethod, bytes: Buffer): Promise<Message> {
  try {
    return fromBinary(method.input, bytes);
  } catch (err) {
    throw new InvalidArgumentError(
      { field: "(message)", description: `cannot decode ${method.input.typeName}: ${(err as Error).message}` },
      { reason: "MALFORMED_MESSAGE" },
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
  flushHeaders: () => void,
): Promise<void> {
  for await (const message of messages) {
    if (call.cancelled) return;
    flushHeaders();
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
  return { code: error.code as number as grpc.status, details: error.rawMessage, metadata };
}

