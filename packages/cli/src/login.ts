import { createServiceClient } from "@promptcraft/client";
import { AuthService } from "@promptcraft/proto/promptcraft/identity/v1/auth_service_pb";
import { parseArgs } from "node:util";

/**
 * `promptcraft login --tenant <slug> --email <email> [--password <p>] [--json]`: logs in with a
 * password and prints the access token alone (for `TOKEN=$(…)`), or the whole token set with
 * `--json`. The password may come from PROMPTCRAFT_PASSWORD instead of the command line.
 */
export async function login(args: string[], identityUrl: string, env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      tenant: { type: "string" },
      email: { type: "string" },
      password: { type: "string" },
      json: { type: "boolean", default: false },
    },
  });
  const password = values.password ?? env.PROMPTCRAFT_PASSWORD;
  if (!values.tenant || !values.email || !password) {
    process.stderr.write("usage: promptcraft login --tenant <slug> --email <email> [--password <p> | PROMPTCRAFT_PASSWORD] [--json]\n");
    return 2;
  }
  const auth = createServiceClient(AuthService, identityUrl, { timeoutMs: 10_000 });
  const { tokens } = await auth.login({ tenantSlug: values.tenant, email: values.email, password });
  if (!tokens) throw new Error("identity answered without tokens");
  if (values.json) {
    process.stdout.write(
      `${JSON.stringify({
        accessToken: tokens.accessToken,
        refreshToken: tokens.refreshToken,
        sessionId: tokens.sessionId,
        accessTokenExpireTime: tokens.accessTokenExpireTime ? new Date(Number(tokens.accessTokenExpireTime.seconds) * 1000).toISOString() : undefined,
      })}\n`,
    );
  } else {
    process.stdout.write(`${tokens.accessToken}\n`);
  }
  return 0;
}
