import { createServiceClient } from "@promptcraft/client";
import { IdentityService } from "@promptcraft/proto/promptcraft/identity/v1/identity_service_pb";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

/** The demo account `npm start` keeps, so a newcomer can get a token at once. */
export interface DemoAccount {
  tenantSlug: string;
  email: string;
  password: string;
  /** Makes CreateTenant idempotent across starts (AIP-155). */
  requestId: string;
}

/**
 * Makes sure the demo tenant and its owner exist, creating them the first time. The credentials
 * live in `<stateDir>/demo.json` (mode 0600) next to the embedded database; the same `request_id`
 * every start makes CreateTenant return the existing tenant, or recreate it after a database reset.
 */
export async function ensureDemoAccount(
  identityUrl: string,
  platformAdminToken: string,
  stateDir: string,
  defaults: { tenantSlug?: string; email?: string } = {},
): Promise<DemoAccount> {
  const file = path.join(stateDir, "demo.json");
  let account: DemoAccount;
  try {
    account = JSON.parse(readFileSync(file, "utf8")) as DemoAccount;
  } catch {
    account = {
      tenantSlug: defaults.tenantSlug ?? "demo",
      email: defaults.email ?? "owner@example.com",
      // A letter first: base64url may start with "-", which `promptcraft login --password <value>` would take for an option.
      password: `p${randomBytes(12).toString("base64url")}`,
      requestId: randomUUID(),
    };
    mkdirSync(stateDir, { recursive: true });
    writeFileSync(file, `${JSON.stringify(account, null, 2)}\n`, { mode: 0o600 });
  }
  const identity = createServiceClient(IdentityService, identityUrl, { token: platformAdminToken, timeoutMs: 10_000 });
  await identity.createTenant({
    tenant: { slug: account.tenantSlug, displayName: "Demo" },
    owner: { email: account.email, displayName: "Demo owner" },
    ownerPassword: account.password,
    requestId: account.requestId,
  });
  return account;
}
