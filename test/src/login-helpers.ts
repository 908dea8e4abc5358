import { randomBytes, scrypt } from "node:crypto";
import { fromBinary, type DescMessage, type DescMethodUnary, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { createServiceClient, ConnectError } from "@promptcraft/client";
import { ErrorInfoSchema, RetryInfoSchema } from "@promptcraft/proto/google/rpc/error_details_pb";
import { StatusSchema } from "@promptcraft/proto/google/rpc/status_pb";
import { grpc, grpcUnary } from "@promptcraft/testing";

/**
 * A password hash in the identity service's stored format (`$scrypt$ln=15,r=8,p=1$salt$key`), for
 * `createUser(..., { passwordHash })`. Written independently of the service's code on purpose: the
 * tests then also check the stored format.
 */
export async function testPasswordHash(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await new Promise<Buffer>((resolve, reject) =>
    scrypt(password.normalize("NFC"), salt, 32, { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 }, (err, k) => (err ? reject(err) : resolve(k))),
  );
  const b64 = (b: Buffer) => b.toString("base64").replace(/=+$/, "");
  return `$scrypt$ln=15,r=8,p=1$${b64(salt)}$${b64(key)}`;
}

export type Protocol = "grpc" | "connect";

/** The outcome of one unary call, the same shape on both transports. */
export type Outcome<O> =
  | { ok: true; response: O }
  | { ok: false; code: string; reason: string | undefined; message: string; retryDelayMs: number | undefined };

/**
 * Calls `method` on a server (gRPC port or Connect port) with an optional bearer token and returns
 * what the client saw: the response, or the status code name, ErrorInfo reason, message and
 * RetryInfo delay.
 */
export async function callUnary<I extends DescMessage, O extends DescMessage>(
  protocol: Protocol,
  ports: { grpcPort: number; connectPort: number },
  method: DescMethodUnary<I, O>,
  request: MessageInitShape<I>,
  token?: string,
  extraHeaders: Record<string, string> = {},
): Promise<Outcome<MessageShape<O>>> {
  const headers: Record<string, string> = { ...extraHeaders, ...(token ? { authorization: `Bearer ${token}` } : {}) };
  if (protocol === "grpc") {
    const result = await grpcUnary(`127.0.0.1:${ports.grpcPort}`, method, request, { metadata: headers });
    if ("response" in result) return { ok: true, response: result.response };
    let retryDelayMs: number | undefined;
    const raw = result.failure.metadata?.get("grpc-status-details-bin")[0];
    if (raw instanceof Buffer) {
      for (const detail of fromBinary(StatusSchema, raw).details) {
        const retry = anyUnpack(detail, RetryInfoSchema);
        if (retry?.retryDelay) retryDelayMs = Number(retry.retryDelay.seconds) * 1000 + Math.round(retry.retryDelay.nanos / 1e6);
      }
    }
    return { ok: false, code: grpc.status[result.failure.code] ?? String(result.failure.code), reason: result.failure.errorInfo?.reason, message: result.failure.message, retryDelayMs };
  }
  const service = method.parent;
  const client = createServiceClient(service, `http://127.0.0.1:${ports.connectPort}`, { protocol: "connect" }) as unknown as Record<
    string,
    (req: MessageInitShape<I>, options: { headers: Record<string, string> }) => Promise<MessageShape<O>>
  >;
  try {
    return { ok: true, response: await client[method.localName]!(request, { headers }) };
  } catch (e) {
    const err = ConnectError.from(e);
    const retry = err.findDetails(RetryInfoSchema)[0];
    return {
      ok: false,
      code: grpc.status[err.code as number] ?? String(err.code),
      reason: err.findDetails(ErrorInfoSchema)[0]?.reason,
      message: err.rawMessage,
      retryDelayMs: retry?.retryDelay ? Number(retry.retryDelay.seconds) * 1000 + Math.round(retry.retryDelay.nanos / 1e6) : undefined,
    };
  }
}
