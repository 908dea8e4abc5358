import { cors as connectCors } from "@connectrpc/connect";
import type { NodeHandler } from "./connect-transport.js";

/** Which web origins may call the Connect port from a browser (`CORS_ALLOWED_ORIGINS`). */
export interface CorsOptions {
  /**
   * Exact origins (`https://app.example.com`) whose pages may call, or `"*"` for a page of any
   * origin. Empty: no page of another origin may.
   */
  allowedOrigins: readonly string[] | "*";
  /** How long a browser may reuse a preflight's answer (`Access-Control-Max-Age`), in seconds. */
  maxAgeSeconds: number;
}

/**
 * Request headers a page may send: what Connect and gRPC-Web need (connect-es's `cors` lists),
 * plus the credential and the request id the platform reads.
 */
export const CORS_ALLOWED_HEADERS: readonly string[] = [...connectCors.allowedHeaders, "authorization", "x-request-id"];

/**
 * Response headers a page may read: gRPC-Web's status, message and error details (connect-es's
 * list), plus the request id the platform echoes.
 */
export const CORS_EXPOSED_HEADERS: readonly string[] = [...connectCors.exposedHeaders, "x-request-id"];

/** The methods Connect (POST, and GET for side-effect-free calls) and gRPC-Web (POST) use. */
export const CORS_ALLOWED_METHODS: readonly string[] = connectCors.allowedMethods;

/**
 * Wraps the Connect port's handler with CORS, so that pages of `allowedOrigins` can call it from a
 * browser:
 * - a request without `Origin` (gRPC, curl, servers) passes untouched;
 * - a preflight (`OPTIONS` with `Access-Control-Request-Method`) from an allowed origin is answered
 *   `204` with the allowed methods and headers; from any other origin `403` with no CORS header, so
 *   the browser refuses the call before it is sent;
 * - any other request from an allowed origin gets `Access-Control-Allow-Origin` and the exposed
 *   headers; from another origin it gets none, and the browser hides the answer from the page.
 *
 * No `Access-Control-Allow-Credentials`: credentials travel in the `authorization` header, never in
 * cookies, so `"*"` cannot expose a session to a foreign page.
 */
export function withCors(handler: NodeHandler, options: CorsOptions): NodeHandler {
  const any = options.allowedOrigins === "*";
  const allowed = new Set(any ? [] : options.allowedOrigins);
  // An answer that depends on Origin must say so, or a cache could hand one origin's to another.
  const vary = !any && allowed.size > 0;
  const preflightHeaders = {
    "access-control-allow-methods": CORS_ALLOWED_METHODS.join(", "),
    "access-control-allow-headers": CORS_ALLOWED_HEADERS.join(", "),
    "access-control-max-age": String(options.maxAgeSeconds),
  };
  const exposed = CORS_EXPOSED_HEADERS.join(", ");

  return (req, res) => {
    if (vary) res.setHeader("vary", "Origin");
    const origin = req.headers.origin;
    if (origin === undefined) return handler(req, res);
    const ok = any || allowed.has(origin);
    const preflight = req.method === "OPTIONS" && req.headers["access-control-request-method"] !== undefined;
    if (preflight) {
      if (!ok) {
        res.writeHead(403, { "content-type": "text/plain; charset=utf-8" });
        res.end("origin not allowed (CORS_ALLOWED_ORIGINS)\n");
        return;
      }
      res.writeHead(204, { "access-control-allow-origin": any ? "*" : origin, ...preflightHeaders, "content-length": "0" });
      res.end();
      return;
    }
    if (ok) {
      res.setHeader("access-control-allow-origin", any ? "*" : origin);
      res.setHeader("access-control-expose-headers", exposed);
    }
    handler(req, res);
  };
}
