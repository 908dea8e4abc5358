// What a web app does to call PromptCraft: @connectrpc/connect-web with the generated client, over
// Connect or gRPC-Web. Never run by Node: browser.e2e.test.ts bundles this file (esbuild) into the
// page it serves to Chromium, and calls `globalThis.getEntity` there.
import { createClient, ConnectError, Code, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { ErrorInfoSchema } from "@promptcraft/proto/google/rpc/error_details_pb";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";

/** What the page reports back to the test, as plain JSON. */
export type PageResult =
  | { ok: true; id: string; title: string; requestId: string | null }
  | { ok: false; code: string; reason: string | null; message: string; requestId: string | null };

export interface PageCall {
  protocol: "connect" | "grpc-web";
  baseUrl: string;
  token: string;
  entityId: string;
  requestId: string;
}

async function getEntity(call: PageCall): Promise<PageResult> {
  const transport: Transport =
    call.protocol === "connect" ? createConnectTransport({ baseUrl: call.baseUrl }) : createGrpcWebTransport({ baseUrl: call.baseUrl });
  const client = createClient(ContentService, transport);
  // Read from the response like an app would: works only for headers the server exposes.
  let requestId: string | null = null;
  const onHeader = (headers: Headers) => (requestId = headers.get("x-request-id"));
  try {
    const entity = await client.getEntity(
      { entityId: call.entityId },
      { headers: { authorization: `Bearer ${call.token}`, "x-request-id": call.requestId }, onHeader },
    );
    return { ok: true, id: entity.id, title: entity.title, requestId };
  } catch (err) {
    const error = ConnectError.from(err);
    return {
      ok: false,
      code: Code[error.code],
      reason: error.findDetails(ErrorInfoSchema)[0]?.reason ?? null,
      message: error.rawMessage,
      requestId: error.metadata.get("x-request-id"),
    };
  }
}

(globalThis as { getEntity?: typeof getEntity }).getEntity = getEntity;
