import type { DescMethodUnary, DescMessage, DescService, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { BadRequestSchema, ErrorInfoSchema } from "@promptcraft/proto/google/rpc/error_details_pb";
import { createServiceClient, ConnectError } from "@promptcraft/client";
import { grpc, grpcUnary } from "@promptcraft/testing";

/** One unary call over gRPC (plain grpc-js) or Connect, as the e2e harnesses make it. */

export type Protocol = "grpc" | "connect";
export const PROTOCOLS: Protocol[] = ["grpc", "connect"];

/** A call's result: the response, or the status code name, ErrorInfo reason and metadata, and BadRequest field paths. */
export type Outcome<O> =
  | { ok: true; res: O }
  | { ok: false; code: string; reason: string | undefined; fields: string[]; metadata: Record<string, string> };

/** Calls `method` of `service` on 127.0.0.1 (gRPC port for grpc, Connect port for connect) with the given headers. */
export async function unaryCall<I extends DescMessage, O extends DescMessage>(
  service: DescService,
  ports: { grpcPort: number; connectPort: number },
  protocol: Protocol,
  method: DescMethodUnary<I, O>,
  request: MessageInitShape<I>,
  headers: Record<string, string>,
): Promise<Outcome<MessageShape<O>>> {
  if (protocol === "grpc") {
    const result = await grpcUnary(`127.0.0.1:${ports.grpcPort}`, method, request, { metadata: headers });
    if ("response" in result) return { ok: true, res: result.response };
    return {
      ok: false,
      code: grpc.status[result.failure.code] ?? String(result.failure.code),
      reason: result.failure.errorInfo?.reason,
      fields: result.failure.badRequest?.fieldViolations.map((v) => v.field) ?? [],
      metadata: { ...(result.failure.errorInfo?.metadata ?? {}) },
    };
  }
  const client = createServiceClient(service, `http://127.0.0.1:${ports.connectPort}`, { protocol: "connect" });
  const fn = (client as unknown as Record<string, (r: unknown, o: unknown) => Promise<MessageShape<O>>>)[method.localName]!;
  try {
    return { ok: true, res: await fn(request, { headers }) };
  } catch (e) {
    const err = ConnectError.from(e);
    const info = err.findDetails(ErrorInfoSchema)[0];
    return {
      ok: false,
      code: grpc.status[err.code as number] ?? String(err.code),
      reason: info?.reason,
      fields: err.findDetails(BadRequestSchema)[0]?.fieldViolations.map((v) => v.field) ?? [],
      metadata: { ...(info?.metadata ?? {}) },
    };
  }
}

/** The outcome's response, or a thrown assertion naming the failure. */
export function ok<O>(outcome: Outcome<O>): O {
  if (!outcome.ok) throw new Error(`expected success, got ${outcome.code} ${outcome.reason ?? ""} ${outcome.fields.join(",")}`);
  return outcome.res;
}

/** `code` and `reason` of a failed outcome (for deepEqual); OK for a success. */
export function failure<O>(outcome: Outcome<O>): { code: string; reason: string | undefined } {
  if (outcome.ok) return { code: "OK", reason: undefined };
  return { code: outcome.code, reason: outcome.reason };
}

/** The BadRequest field paths of a failed outcome (empty for a success). */
export function badFields<O>(outcome: Outcome<O>): string[] {
  return outcome.ok ? [] : outcome.fields;
}
