import { createHash, timingSafeEqual } from "node:crypto";
import type { DescMethod } from "@bufbuild/protobuf";
import { bearerToken } from "./auth.js";
import type { AuthContext, CallContext } from "./context.js";

/**
 * The service credential (docs/decisions.md): one deployment secret, SERVICE_TOKEN (≥ 32
 * characters), that the services present as `authorization: Bearer <it>` for their background
 * calls to each other (content's usage reporter to analytics). A method accepts it only when its
 * registration lists it in `serviceMethods`; the caller is then `kind: "service"`, of no tenant,
 * named by the `x-promptcraft-service` header (a label for logs and the audit log, not a proof:
 * every holder of the secret is equally trusted). Compared in constant time.
 */
export const SERVICE_NAME_HEADER = "x-promptcraft-service";

/** Whether two secrets are equal, in constant time (compared as SHA-256 digests, so lengths never differ). */
export function secretEquals(presented: string, expected: string): boolean {
  const digest = (value: string) => createHash("sha256").update(value, "utf8").digest();
  return timingSafeEqual(digest(presented), digest(expected));
}

const SERVICE_NAME = /^[a-z][a-z0-9-]{0,39}$/;

/**
 * Wraps the platform's authenticator: on a method of `serviceMethods`, a bearer equal to
 * `serviceToken` authenticates a service; anything else goes to `next`. Without a token configured
 * no call is a service.
 */
export function withServiceCredential(
  serviceToken: string | undefined,
  serviceMethods: ReadonlySet<DescMethod>,
  next: (ctx: CallContext) => Promise<AuthContext>,
): (ctx: CallContext) => Promise<AuthContext> {
  if (serviceToken === undefined || serviceMethods.size === 0) return next;
  return async (ctx) => {
    if (serviceMethods.has(ctx.method)) {
      const presented = bearerToken(ctx);
      if (presented !== undefined && secretEquals(presented, serviceToken)) {
        const name = ctx.header(SERVICE_NAME_HEADER);
        return { tenantId: "", role: "viewer", kind: "service", credentialId: `service:${name !== undefined && SERVICE_NAME.test(name) ? name : "unknown"}` };
      }
    }
    return next(ctx);
  };
}
