import { createServiceClient } from "@promptcraft/client";
import { IdentityService } from "@promptcraft/proto/promptcraft/identity/v1/identity_service_pb";
import { Role } from "@promptcraft/proto/promptcraft/identity/v1/resources_pb";
import { parseArgs } from "node:util";

/**
 * `promptcraft tenant create …` and `promptcraft user create …`: the identity calls an operator or
 * a script needs to set up accounts without writing a client. Both print JSON on stdout (ids, and
 * the one-time invitation token when no password was given) so `jq` can pick fields; errors go to
 * stderr with the status the service answered (the CLI's top-level handler prints them).
 */

const ROLES: Record<string, Role> = { owner: Role.OWNER, admin: Role.ADMIN, editor: Role.EDITOR, viewer: Role.VIEWER };

function usage(text: string): number {
  process.stderr.write(`usage: ${text}\n`);
  return 2;
}

const TENANT_USAGE =
  "promptcraft tenant create --slug <slug> --owner-email <email> [--name <display name>] [--owner-password <p> | PROMPTCRAFT_PASSWORD] [--request-id <id>]\n" +
  "       (platform administrator: PLATFORM_ADMIN_TOKEN; identity found as `promptcraft help` says)";

/** Creates a tenant and its first owner with the platform administrator's credential. */
export async function tenantCommand(args: string[], identityUrl: string, env: NodeJS.ProcessEnv): Promise<number> {
  const [action, ...rest] = args;
  if (action !== "create") return usage(TENANT_USAGE);
  const { values } = parseArgs({
    args: rest,
    options: {
      slug: { type: "string" },
      name: { type: "string" },
      "owner-email": { type: "string" },
      "owner-password": { type: "string" },
      "request-id": { type: "string" },
    },
  });
  const adminToken = env.PLATFORM_ADMIN_TOKEN;
  if (!values.slug || !values["owner-email"] || !adminToken) return usage(TENANT_USAGE);
  const identity = createServiceClient(IdentityService, identityUrl, { token: adminToken, timeoutMs: 10_000 });
  const created = await identity.createTenant({
    tenant: { slug: values.slug, displayName: values.name ?? values.slug },
    owner: { email: values["owner-email"] },
    ownerPassword: values["owner-password"] ?? env.PROMPTCRAFT_PASSWORD ?? "",
    requestId: values["request-id"] ?? "",
  });
  process.stdout.write(
    `${JSON.stringify({
      tenantId: created.tenant?.id,
      slug: created.tenant?.slug,
      ownerId: created.owner?.id,
      ownerEmail: created.owner?.email,
      invitationToken: created.invitationToken || undefined,
    })}\n`,
  );
  return 0;
}

const USER_USAGE =
  "promptcraft user create --email <email> --role <owner|admin|editor|viewer> [--name <display name>] [--password <p> | PROMPTCRAFT_PASSWORD] [--request-id <id>]\n" +
  "       (an admin's or owner's access token in PROMPTCRAFT_TOKEN, e.g. from `promptcraft login`; identity found as `promptcraft help` says)";

/** Creates (or, without a password, invites) a user in the tenant of the caller's token. */
export async function userCommand(args: string[], identityUrl: string, env: NodeJS.ProcessEnv): Promise<number> {
  const [action, ...rest] = args;
  if (action !== "create") return usage(USER_USAGE);
  const { values } = parseArgs({
    args: rest,
    options: {
      email: { type: "string" },
      role: { type: "string" },
      name: { type: "string" },
      password: { type: "string" },
      "request-id": { type: "string" },
    },
  });
  const token = env.PROMPTCRAFT_TOKEN;
  const role = values.role === undefined ? undefined : ROLES[values.role];
  if (!values.email || role === undefined || !token) return usage(USER_USAGE);
  const identity = createServiceClient(IdentityService, identityUrl, { token, timeoutMs: 10_000 });
  const created = await identity.createUser({
    user: { email: values.email, displayName: values.name ?? "", role },
    password: values.password ?? env.PROMPTCRAFT_PASSWORD ?? "",
    requestId: values["request-id"] ?? "",
  });
  process.stdout.write(
    `${JSON.stringify({ userId: created.user?.id, email: created.user?.email, invitationToken: created.invitationToken || undefined })}\n`,
  );
  return 0;
}
