import { createRegistry, toBinary, type DescExtension, type DescFile, type DescMessage, type DescService, type MessageInitShape } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import {
  ServerReflection as ReflectionV1,
  type ServerReflectionRequest,
  type ServerReflectionResponseSchema,
} from "@promptcraft/proto/grpc/reflection/v1/reflection_pb";
import { ServerReflection as ReflectionV1alpha } from "@promptcraft/proto/grpc/reflection/v1alpha/reflection_pb";
import { serve, type ServiceRegistration } from "./handlers.js";

type ResponseInit = MessageInitShape<typeof ServerReflectionResponseSchema>;

// gRPC status codes used inside reflection's ErrorResponse.
const NOT_FOUND = 5;
const INVALID_ARGUMENT = 3;

/**
 * Server reflection (`grpc.reflection.v1` and `v1alpha`, which grpcurl and ghz still try first)
 * built from the protobuf-es descriptors that the server already has, so no .proto files are
 * needed at run time and both transports serve it.
 */
export function reflectionRegistrations(services: readonly DescService[]): ServiceRegistration[] {
  const files = new Map<string, DescFile>();
  const collect = (file: DescFile) => {
    if (files.has(file.proto.name)) return;
    files.set(file.proto.name, file);
    file.dependencies.forEach(collect);
  };
  const all = [...services, ReflectionV1, ReflectionV1alpha];
  all.forEach((service) => collect(service.file));
  const registry = createRegistry(...files.values());
  const serviceNames = all.map((s) => s.typeName).sort();
  const extensions = [...files.values()].flatMap(extensionsOf);

  const answer = (request: ServerReflectionRequest, sent: Set<string>): ResponseInit => {
    const base = { validHost: request.host, originalRequest: request };
    const withFile = (file: DescFile | undefined, what: string): ResponseInit =>
      file
        ? { ...base, messageResponse: { case: "fileDescriptorResponse", value: { fileDescriptorProto: closure(file, sent) } } }
        : error(base, NOT_FOUND, `${what} not found`);
    const req = request.messageRequest;
    switch (req.case) {
      case "listServices":
        return { ...base, messageResponse: { case: "listServicesResponse", value: { service: serviceNames.map((name) => ({ name })) } } };
      case "fileByFilename":
        return withFile(files.get(req.value), `file ${req.value}`);
      case "fileContainingSymbol":
        return withFile(fileOfSymbol(registry, req.value), `symbol ${req.value}`);
      case "fileContainingExtension": {
        const ext = extensions.find((e) => e.extendee.typeName === req.value.containingType && e.number === req.value.extensionNumber);
        return withFile(ext?.file, `extension ${req.value.extensionNumber} of ${req.value.containingType}`);
      }
      case "allExtensionNumbersOfType": {
        if (!(registry.getMessage(req.value))) return error(base, NOT_FOUND, `type ${req.value} not found`);
        const numbers = extensions.filter((e) => e.extendee.typeName === req.value).map((e) => e.number);
        return { ...base, messageResponse: { case: "allExtensionNumbersResponse", value: { baseTypeName: req.value, extensionNumber: numbers } } };
      }
      default:
        return error(base, INVALID_ARGUMENT, "empty reflection request");
    }
  };

  // Both versions have the same messages under different packages; one implementation serves
  // both, and the cast is only about the generated type names.
  const handler = async function* (requests: AsyncIterable<ServerReflectionRequest>) {
    const sent = new Set<string>(); // a stream sends each file once, as the reference server does
    for await (const request of requests) yield answer(request, sent);
  };
  return [
    serve(ReflectionV1, { serverReflectionInfo: handler }, { public: true, untraced: true }),
    serve(ReflectionV1alpha, { serverReflectionInfo: handler as never }, { public: true, untraced: true }),
  ];
}

function error(base: object, errorCode: number, errorMessage: string): ResponseInit {
  return { ...base, messageResponse: { case: "errorResponse", value: { errorCode, errorMessage } } };
}

/** The file and, transitively, its dependencies, minus those this stream already sent. */
function closure(file: DescFile, sent: Set<string>): Uint8Array[] {
  const out: Uint8Array[] = [];
  const visit = (f: DescFile) => {
    if (sent.has(f.proto.name)) return;
    sent.add(f.proto.name);
    out.push(toBinary(FileDescriptorProtoSchema, f.proto));
    f.dependencies.forEach(visit);
  };
  visit(file);
  // The requested file must be in the answer even when sent before on this stream.
  if (out.length === 0) out.push(toBinary(FileDescriptorProtoSchema, file.proto));
  return out;
}

function fileOfSymbol(registry: ReturnType<typeof createRegistry>, symbol: string): DescFile | undefined {
  const direct = registry.get(symbol);
  if (direct) return direct.file;
  // A method (`pkg.Service.Method`) or an enum value / field: look up the parent.
  const dot = symbol.lastIndexOf(".");
  if (dot < 0) return undefined;
  const parent = registry.get(symbol.slice(0, dot));
  return parent?.file;
}

function extensionsOf(file: DescFile): DescExtension[] {
  const nested = (message: DescMessage): DescExtension[] => [
    ...message.nestedExtensions,
    ...message.nestedMessages.flatMap(nested),
  ];
  return [...file.extensions, ...file.messages.flatMap(nested)];
}
