import { Code, ConnectError } from "@connectrpc/connect";
import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { isConnectionError } from "@promptcraft/db";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  QuotaFailureSchema,
  RetryInfoSchema,
} from "@promptcraft/proto/google/rpc/error_details_pb";

/** The `domain` of every `google.rpc.ErrorInfo` we send. */
export const ERROR_DOMAIN = "promptcraft.dev";

/** A field that failed validation, reported in `google.rpc.BadRequest`. */
export interface FieldViolation {
  /** Path of the field in the request, e.g. `entity.title` or `tags[2]`. */
  field: string;
  description: string;
  /** Machine-readable reason, e.g. `string.max_len`. */
  reason?: string;
}

interface AppErrorInit {
  /**
   * Machine-readable reason, sent as `ErrorInfo.reason` (the enum value's name without its prefix,
   * e.g. `ETAG_MISMATCH`); defaults to the generic reason of the error's class.
   */
  reason?: ErrorReason;
  /** Extra key/values for `ErrorInfo.metadata` (strings only, by the spec). */
  metadata?: Record<string, string>;
  cause?: unknown;
}

/**
 * Base of the domain errors. Domain code throws these; one mapping turns them into status codes
 * with `google.rpc` details on both transports. Anything that is not an AppError (or a
 * ConnectError) becomes INTERNAL, with its cause logged and never sent.
 */
export abstract class AppError extends Error {
  abstract readonly code: Code;
  readonly reason: ErrorReason;
  readonly metadata: Record<string, string>;

  constructor(message: string, init: AppErrorInit = {}) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = new.target.name;
    this.reason = init.reason ?? (new.target as unknown as { defaultReason: ErrorReason }).defaultReason;
    this.metadata = init.metadata ?? {};
  }

  /** The reason used when a thrower names none. */
  static defaultReason: ErrorReason = ErrorReason.UNSPECIFIED;
}

/** `ErrorInfo.reason` of an error: the enum value's name (`RESOURCE_NOT_FOUND`). */
export function reasonName(reason: ErrorReason): string {
  return ErrorReason[reason] ?? "UNSPECIFIED";
}

/** The resource does not exist (or the caller may not know it exists). */
export class NotFoundError extends AppError {
  readonly code = Code.NotFound;
  static override defaultReason = ErrorReason.RESOURCE_NOT_FOUND;
}
/** A create would duplicate a unique resource. */
export class AlreadyExistsError extends AppError {
  readonly code = Code.AlreadyExists;
  static override defaultReason = ErrorReason.RESOURCE_ALREADY_EXISTS;
}
/** The request is malformed; `violations` names the fields. */
export class InvalidArgumentError extends AppError {
  readonly code = Code.InvalidArgument;
  static override defaultReason = ErrorReason.INVALID_REQUEST;
  readonly violations: FieldViolation[];
  constructor(violations: FieldViolation[] | FieldViolation, init: AppErrorInit = {}) {
    const list = Array.isArray(violations) ? violations : [violations];
    super(list.map((v) => `${v.field}: ${v.description}`).join("; ") || "invalid argument", init);
    this.violations = list;
  }
}
/** The caller is known but may not do this. */
export class PermissionDeniedError extends AppError {
  readonly code = Code.PermissionDenied;
  static override defaultReason = ErrorReason.PERMISSION_INSUFFICIENT;
}
/** The caller is not (validly) authenticated. */
export class UnauthenticatedError extends AppError {
  readonly code = Code.Unauthenticated;
  static override defaultReason = ErrorReason.CREDENTIALS_INVALID;
}
/** The system is not in a state that allows the operation (e.g. deleting the last owner). */
export class FailedPreconditionError extends AppError {
  readonly code = Code.FailedPrecondition;
}
/** A position or value past the valid range as it is now (e.g. a cursor into data retention removed). */
export class OutOfRangeError extends AppError {
  readonly code = Code.OutOfRange;
}
/** A concurrency conflict (etag mismatch, lost race); the client may re-read and retry. */
/** A concurrent change or run won; `retryAfterMs`, when known, goes into `google.rpc.RetryInfo`. */
export class AbortedError extends AppError {
  readonly code = Code.Aborted;
  static override defaultReason = ErrorReason.CONCURRENT_MODIFICATION;
  readonly retryAfterMs: number | undefined;
  constructor(message: string, init: AppErrorInit & { retryAfterMs?: number } = {}) {
    super(message, init);
    this.retryAfterMs = init.retryAfterMs;
  }
}
/** A quota that was exhausted, sent as a `google.rpc.QuotaFailure` violation. */
export interface QuotaViolation {
  /** Who ran out, e.g. `tenant:<uuid>`. */
  subject: string;
  description: string;
}

/**
 * A quota or rate limit was hit; `retryAfterMs` goes into `google.rpc.RetryInfo`, `quotaViolations`
 * into `google.rpc.QuotaFailure`.
 */
export class ResourceExhaustedError extends AppError {
  readonly code = Code.ResourceExhausted;
  static override defaultReason = ErrorReason.RATE_LIMITED;
  readonly retryAfterMs: number | undefined;
  readonly quotaViolations: QuotaViolation[];
  constructor(message: string, init: AppErrorInit & { retryAfterMs?: number; quotaViolations?: QuotaViolation[] } = {}) {
    super(message, init);
    this.retryAfterMs = init.retryAfterMs;
    this.quotaViolations = init.quotaViolations ?? [];
  }
}
/**
 * A dependency outside the service (its database, a peer service, an OIDC provider) failed; the
 * client may retry later — after `retryAfterMs`, sent as `google.rpc.RetryInfo`, when given.
 */
export class UnavailableError extends AppError {
  readonly code = Code.Unavailable;
  static override defaultReason = ErrorReason.UNSPECIFIED;
  readonly retryAfterMs: number | undefined;
  constructor(message: string, init: AppErrorInit & { retryAfterMs?: number } = {}) {
    super(message, init);
    this.retryAfterMs = init.retryAfterMs;
  }
}

/** What DEPENDENCY_UNAVAILABLE names in its `dependency` metadata. */
export type Dependency = "database" | "identity" | "content" | "graph" | "search" | "analytics";

/**
 * The `google.rpc.RetryInfo` delay of DEPENDENCY_UNAVAILABLE: a database restart or failover takes
 * seconds, so clients retrying sooner only add load. Retries should still back off from there.
 */
export const DEPENDENCY_RETRY_DELAY_MS = 1000;

/** UNAVAILABLE (DEPENDENCY_UNAVAILABLE, `dependency` metadata, RetryInfo): `dependency` cannot be reached right now. */
export function dependencyUnavailable(dependency: Dependency, message: string, cause?: unknown): UnavailableError {
  return new UnavailableError(message, {
    reason: ErrorReason.DEPENDENCY_UNAVAILABLE,
    metadata: { dependency },
    retryAfterMs: DEPENDENCY_RETRY_DELAY_MS,
    cause,
  });
}

/** The dependency a DEPENDENCY_UNAVAILABLE error names, if `err` is one. */
export function unavailableDependency(err: unknown): Dependency | undefined {
  if (!(err instanceof UnavailableError) || err.reason !== ErrorReason.DEPENDENCY_UNAVAILABLE) return undefined;
  return err.metadata.dependency as Dependency | undefined;
}
/** The method exists in the contract but is not built yet. */
export class UnimplementedError extends AppError {
  readonly code = Code.Unimplemented;
  static override defaultReason = ErrorReason.METHOD_NOT_IMPLEMENTED;
}

type OutgoingDetail = { desc: DescMessage; value: MessageInitShape<DescMessage> };

/** SQLSTATEs that mean "retry the transaction", not "bug". */
const RETRYABLE_SQLSTATES = new Set(["40001", "40P01"]);

function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** What {@link toConnectError} makes of a thrown value. */
export interface MappedError {
  /** The error sent to the client. */
  error: ConnectError;
  /** The error was unexpected: log its cause (the client only sees "internal error"). */
  internal: boolean;
  /** Set when the call failed because this dependency is unreachable (DEPENDENCY_UNAVAILABLE). */
  dependency?: Dependency;
}

/**
 * Maps any thrown value to the ConnectError that is sent: AppErrors with their details; a
 * serialization failure or deadlock (40001, 40P01) to ABORTED; a database that cannot be reached
 * (connection refused or lost, server shutting down or starting up, too many connections, pool
 * acquire timeout — see `isConnectionError`) to UNAVAILABLE with DEPENDENCY_UNAVAILABLE and
 * RetryInfo; anything else to INTERNAL.
 */
export function toConnectError(err: unknown, requestId: string): MappedError {
  if (err instanceof ConnectError) return { error: err, internal: err.code === Code.Internal || err.code === Code.Unknown };
  if (err instanceof AppError) {
    const details: OutgoingDetail[] = [
      {
        desc: ErrorInfoSchema,
        value: create(ErrorInfoSchema, { reason: reasonName(err.reason), domain: ERROR_DOMAIN, metadata: err.metadata }),
      },
    ];
    if (err instanceof InvalidArgumentError) {
      details.push({
        desc: BadRequestSchema,
        value: create(BadRequestSchema, {
          fieldViolations: err.violations.map((v) => ({ field: v.field, description: v.description, reason: v.reason ?? "" })),
        }),
      });
    }
    if (err instanceof ResourceExhaustedError && err.quotaViolations.length > 0) {
      details.push({ desc: QuotaFailureSchema, value: create(QuotaFailureSchema, { violations: err.quotaViolations }) });
    }
    if ((err instanceof ResourceExhaustedError || err instanceof UnavailableError || err instanceof AbortedError) && err.retryAfterMs !== undefined) {
      details.push({ desc: RetryInfoSchema, value: create(RetryInfoSchema, { retryDelay: durationFromMs(err.retryAfterMs) }) });
    }
    const dependency = unavailableDependency(err);
    return { error: new ConnectError(err.message, err.code, undefined, details, err), internal: false, ...(dependency ? { dependency } : {}) };
  }
  const state = sqlState(err);
  if (state && RETRYABLE_SQLSTATES.has(state)) {
    return { error: toConnectError(new AbortedError("concurrent modification, retry"), requestId).error, internal: false };
  }
  if (isConnectionError(err)) return toConnectError(dependencyUnavailable("database", "database unavailable", err), requestId);
  if (isAbort(err)) return { error: new ConnectError("call cancelled", Code.Canceled), internal: false };
  return { error: new ConnectError(`internal error (request id ${requestId})`, Code.Internal), internal: true };
}

function isAbort(err: unknown): boolean {
  return err instanceof Error && (err.name === "AbortError" || (err as { code?: unknown }).code === "ABORT_ERR");
}

export { Code, ConnectError };
