import * as grpc from "@grpc/grpc-js";
import { fromBinary, toBinary, type DescMessage, type DescMethodUnary, type MessageInitShape, type MessageShape, create } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { StatusSchema } from "@promptcraft/proto/google/rpc/status_pb";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  QuotaFailureSchema,
  RetryInfoSchema,
  type BadRequest,
  type ErrorInfo,
  type QuotaFailure,
  type RetryInfo,
} from "@promptcraft/proto/google/rpc/error_details_pb";

/** A failed call as a grpc-js client sees it, with the rich details decoded. */
export interface GrpcFailure {
  code: grpc.status;
  message: string;
  metadata: grpc.Metadata;
  errorInfo?: ErrorInfo;
  badRequest?: BadRequest;
  retryInfo?: RetryInfo;
  quotaFailure?: QuotaFailure;
}

/**
 * Calls a unary method with a plain @grpc/grpc-js client (what most gRPC users run), so tests see
 * exactly what such clients get: status code, message, and `grpc-status-details-bin`.
 */
export async function grpcUnary<I extends DescMessage, O extends DescMessage>(
  address: string,
  method: DescMethodUnary<I, O>,
  request: MessageInitShape<I>,
  options: { metadata?: Record<string, string>; deadlineMs?: number } = {},
): Promise<{ response: MessageShape<O>; headers: grpc.Metadata } | { failure: GrpcFailure }> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  for (const [k, v] of Object.entries(options.metadata ?? {})) metadata.set(k, v);
  let headers = new grpc.Metadata();
  try {
    return await new Promise((resolve) => {
      const call = client.makeUnaryRequest(
        `/${method.parent.typeName}/${method.name}`,
        (msg: MessageShape<I>) => Buffer.from(toBinary(method.input, msg)),
        (buf: Buffer) => fromBinary(method.output, buf),
        create(method.input, request),
        metadata,
        options.deadlineMs ? { deadline: Date.now() + options.deadlineMs } : {},
        (err, response) => {
          if (err) resolve({ failure: failureOf(err) });
          else resolve({ response: response!, headers });
        },
      );
      call.on("metadata", (md) => (headers = md));
    });
  } finally {
    client.close();
  }
}

function failureOf(err: grpc.ServiceError): GrpcFailure {
  const failure: GrpcFailure = { code: err.code, message: err.details, metadata: err.metadata };
  const raw = err.metadata?.get("grpc-status-details-bin")[0];
  if (raw instanceof Buffer) {
    const status = fromBinary(StatusSchema, raw);
    for (const detail of status.details) {
      failure.errorInfo ??= anyUnpack(detail, ErrorInfoSchema);
      failure.badRequest ??= anyUnpack(detail, BadRequestSchema);
      failure.retryInfo ??= anyUnpack(detail, RetryInfoSchema);
      failure.quotaFailure ??= anyUnpack(detail, QuotaFailureSchema);
    }
  }
  return failure;
}

export { grpc };
