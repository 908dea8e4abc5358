import type {
  DescMethod,
  DescMethodBiDiStreaming,
  DescMethodClientStreaming,
  DescMethodServerStreaming,
  DescMethodUnary,
  DescService,
  Message,
  MessageInitShape,
  MessageShape,
} from "@bufbuild/protobuf";
import type { CallContext } from "./context.js";
import type { FieldViolation } from "./errors.js";

/** A method's handler, by its streaming kind: the same signature on both transports. */
export type MethodHandler<M extends DescMethod> =
  M extends DescMethodUnary<infer I, infer O>
    ? (request: MessageShape<I>, ctx: CallContext) => Promise<MessageInitShape<O>>
    : M extends DescMethodServerStreaming<infer I, infer O>
      ? (request: MessageShape<I>, ctx: CallContext) => AsyncIterable<MessageInitShape<O>>
      : M extends DescMethodClientStreaming<infer I, infer O>
        ? (requests: AsyncIterable<MessageShape<I>>, ctx: CallContext) => Promise<MessageInitShape<O>>
        : M extends DescMethodBiDiStreaming<infer I, infer O>
          ? (requests: AsyncIterable<MessageShape<I>>, ctx: CallContext) => AsyncIterable<MessageInitShape<O>>
          : never;

/**
 * Handlers of one service, keyed by the method's local name (`getEntity`). A method left out
 * answers UNIMPLEMENTED on both transports.
 */
export type ServiceHandlers<S extends DescService> = {
  [P in keyof S["method"]]?: MethodHandler<S["method"][P]>;
};

/**
 * A hand-written check of a method's request, used instead of protovalidate: the violations (empty
 * when valid), with the same field paths and verdicts as the proto rules. Only for hot paths
 * where interpreting the rules costs more than the work (usage ingest: ~0.1 ms per event); a test
 * must hold it to protovalidate's verdicts.
 */
export type RequestValidator = (request: Message) => FieldViolation[];

/** Untyped form used inside the transports. */
export type AnyHandler = (input: unknown, ctx: CallContext) => unknown;

/** One service to serve: its descriptor, its handlers, and whether callers must authenticate. */
export interface ServiceRegistration {
  service: DescService;
  handlers: Record<string, AnyHandler | undefined>;
  /** Public services (health, reflection) skip authentication. */
  public: boolean;
  /**
   * Methods (local names, e.g. `getJwks`) that skip the platform's authentication although the
   * service does not: the contract's anonymous methods (login, JWKS), and methods that check a
   * credential of their own (platform admin). Every other method needs a verified caller.
   */
  publicMethods?: ReadonlySet<string>;
  /**
   * Methods (local names) that also accept the service credential (SERVICE_TOKEN, see
   * service-credential.ts) besides the usual ones: the caller is then `kind: "service"`.
   */
  serviceMethods?: ReadonlySet<string>;
  /** Hand-written request checks by method (local name), replacing protovalidate for it. */
  validators?: Readonly<Record<string, RequestValidator | undefined>>;
  /** Infrastructure (health, reflection) makes no spans: probes every few seconds would bury the traces of real calls. */
  untraced?: boolean;
}

/** Pairs a service descriptor with typed handlers. */
export function serve<S extends DescService>(
  service: S,
  handlers: ServiceHandlers<S>,
  options: {
    public?: boolean;
    publicMethods?: readonly (keyof S["method"] & string)[];
    serviceMethods?: readonly (keyof S["method"] & string)[];
    validators?: { [P in keyof S["method"]]?: (request: MessageShape<S["method"][P]["input"]>) => FieldViolation[] };
    untraced?: boolean;
  } = {},
): ServiceRegistration {
  for (const name of [...(options.publicMethods ?? []), ...(options.serviceMethods ?? [])]) {
    if (!(name in service.method)) throw new Error(`${service.typeName} has no method ${name}`);
  }
  return {
    service,
    handlers: handlers as Record<string, AnyHandler | undefined>,
    public: options.public ?? false,
    publicMethods: new Set(options.publicMethods ?? []),
    serviceMethods: new Set(options.serviceMethods ?? []),
    validators: (options.validators ?? {}) as Record<string, RequestValidator | undefined>,
    untraced: options.untraced ?? false,
  };
}
