import knexFactory from "knex";

// What "the database cannot be reached right now" looks like from the `pg` driver and knex's pool.
// Recognised by SQLSTATE and errno codes and by the error classes; the few conditions pg reports
// without any code are recognised by its exact messages (pg/lib/client.js), which are listed here
// and nowhere else.

/**
 * SQLSTATEs of a server that is going away, coming up or full: class 08 (connection exception),
 * 57P01 admin_shutdown ("terminating connection due to administrator command", also what
 * `pg_terminate_backend` sends), 57P02 crash_shutdown, 57P03 cannot_connect_now ("the database
 * system is starting up / shutting down"), 53300 too_many_connections.
 */
const UNAVAILABLE_SQLSTATES = new Set(["57P01", "57P02", "57P03", "53300"]);

/** Socket-level failures (node errno codes) of reaching or keeping a connection to the server. */
const SOCKET_ERRNOS = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "EHOSTDOWN",
  "ENETUNREACH",
  "ENETDOWN",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ERR_STREAM_DESTROYED",
]);

/** Messages of pg's codeless connection errors (pg 8): the socket ended, broke, or timed out connecting. */
const PG_CONNECTION_MESSAGES = new Set([
  "Connection terminated unexpectedly",
  "Connection terminated",
  "Client has encountered a connection error and is not queryable",
  // connectionTimeoutMillis passed while connecting (pg destroys the socket with this error)
  "timeout expired",
]);

const { KnexTimeoutError } = knexFactory;

/**
 * Whether `err` means the database is unreachable or refusing connections right now — as opposed to
 * an error of the statement itself. True for the SQLSTATEs of {@link UNAVAILABLE_SQLSTATES} and
 * class 08, socket errnos (ECONNREFUSED, ECONNRESET…), pg's connection-lost errors, and knex's
 * pool acquire timeout (`KnexTimeoutError`, which is what a call gets while the pool cannot create
 * connections). Follows `cause` chains and AggregateErrors (a few levels deep).
 */
export function isConnectionError(err: unknown, depth = 0): boolean {
  if (depth > 4 || err === null || typeof err !== "object") return false;
  const e = err as { code?: unknown; cause?: unknown; errors?: unknown };
  if (typeof e.code === "string") {
    if (e.code.startsWith("08") && e.code.length === 5) return true;
    if (UNAVAILABLE_SQLSTATES.has(e.code) || SOCKET_ERRNOS.has(e.code)) return true;
  }
  // Only the pool's acquire timeout: knex's `.timeout()` on a query throws the same class, with the
  // `timeout` it exceeded (we do not use that, but it would be a slow statement, not an outage).
  if (err instanceof KnexTimeoutError && !("timeout" in err)) return true;
  if (err instanceof Error && err.constructor === Error && isPgConnectionMessage(err.message)) return true;
  if (Array.isArray(e.errors) && e.errors.some((inner) => isConnectionError(inner, depth + 1))) return true;
  return e.cause !== undefined && isConnectionError(e.cause, depth + 1);
}

// knex prefixes the failed statement to the driver's message: "ROLLBACK - Connection terminated…".
function isPgConnectionMessage(message: string): boolean {
  if (PG_CONNECTION_MESSAGES.has(message)) return true;
  const at = message.lastIndexOf(" - ");
  return at !== -1 && PG_CONNECTION_MESSAGES.has(message.slice(at + 3));
}
