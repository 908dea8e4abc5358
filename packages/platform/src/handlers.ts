import type {
  DescMethod,
  DescMethodBiDiStreaming,
  DescMethodClientStreaming,
  DescMethodServerStreaming,
  DescMethodUnary,
  DescService,
  MessageInitShape,
  MessageShape,
} from "@bufbuild/protobuf";
import type { CallContext } from "./context.js";

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

/** Untyped form used inside the transports. */
export type AnyHandler = (input: unknown, ctx: CallContext) => unknown;

/** One service to serve: its descriptor, its handlers, and whether callers must authenticate. */
export interface ServiceRegistration {
  service: DescService;
  handlers: Record<string, AnyHandler | undefined>;
  /** Public services (health, reflection) skip authentication. */
  public: boolean;
}

/** Pairs a service descriptor with typed handlers. */
export function serve<S extends DescService>(
  service: S,
  handlers: ServiceHandlers<S>,
  options: { public?: boolean } = {},
): ServiceRegistration {
  return { service, handlers: handlers as Record<string, AnyHandler | undefined>, public: options.public ?? false };
}
