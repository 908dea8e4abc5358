import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { IdentityService } from "@promptcraft/proto/promptcraft/identity/v1/identity_service_pb";
import { Role, TenantState, UserState } from "@promptcraft/proto/promptcraft/identity/v1/resources_pb";
import { uniqueSlug } from "@promptcraft/testing";
import { ADMIN_TOKEN, badFields, failure, IdentityHarness, microsOf, ok, PROTOCOLS } from "./identity-e2e-helpers.js";
import { assertForgedPageTokensRefused } from "./page-tokens.js";

/** IdentityService tenants over gRPC and Connect: platform-admin methods, members' reads and updates, events. */

const h = new IdentityHarness();
beforeAll(() => h.start());
afterAll(() => h.close());

const M = IdentityService.method;
const PASSWORD = "correct horse battery staple";

for (const protocol of PROTOCOLS) {
  describe(`tenants over ${protocol}`, () => {
    test("CreateTenant needs the platform-admin credential", async () => {
      const req = { tenant: { slug: uniqueSlug(), displayName: "Acme" }, owner: { email: "o@acme.test" } };
      assert.deepEqual(failure(await h.call(protocol, M.createTenant, req)), { code: "UNAUTHENTICATED", reason: "CREDENTIALS_MISSING" });
      assert.deepEqual(failure(await h.call(protocol, M.createTenant, req, "not-the-admin-token")), {
        code: "PERMISSION_DENIED",
        reason: "PLATFORM_ADMIN_REQUIRED",
      });
      const member = await h.tenantWith(["owner"]);
      assert.deepEqual(failure(await h.call(protocol, M.createTenant, req, member.users[0]!.token)), {
        code: "PERMISSION_DENIED",
        reason: "PLATFORM_ADMIN_REQUIRED",
      });
      assert.deepEqual(failure(await h.call(protocol, M.suspendTenant, { tenantId: member.tenantId, reason: "x" }, member.users[0]!.token)), {
        code: "PERMISSION_DENIED",
        reason: "PLATFORM_ADMIN_REQUIRED",
      });
      assert.deepEqual(failure(await h.call(protocol, M.resumeTenant, { tenantId: member.tenantId }, member.users[0]!.token)), {
        code: "PERMISSION_DENIED",
        reason: "PLATFORM_ADMIN_REQUIRED",
      });
    });

    test("CreateTenant returns the tenant and its owner, appends both events, is idempotent with request_id", async () => {
      const slug = uniqueSlug();
      const requestId = randomUUID();
      const callId = randomUUID();
      const req = {
        tenant: { slug, displayName: "Acme Labs", plan: "team", quotas: { maxUsers: 10 } },
        owner: { email: "Owner@Acme.test", displayName: "Olga" },
        ownerPassword: PASSWORD,
        requestId,
      };
      const res = ok(await h.call(protocol, M.createTenant, req, ADMIN_TOKEN, { "x-request-id": callId }));
      const tenant = res.tenant!;
      const owner = res.owner!;
      assert.equal(tenant.slug, slug);
      assert.equal(tenant.displayName, "Acme Labs");
      assert.equal(tenant.plan, "team");
      assert.equal(tenant.state, TenantState.ACTIVE);
      assert.equal(tenant.quotas?.maxUsers, 10);
      assert.deepEqual(tenant.settings?.protectedLabels, ["production"]);
      assert.ok(tenant.etag);
      assert.equal(owner.tenantId, tenant.id);
      assert.equal(owner.email, "Owner@Acme.test");
      assert.equal(owner.role, Role.OWNER);
      assert.equal(owner.state, UserState.ACTIVE);
      assert.equal(owner.hasPassword, true);
      assert.equal(res.invitationToken, "");

      const { rows } = await h.db.raw<{ rows: { password_hash: string }[] }>("select password_hash from app_user where tenant_id = ? and id = ?", [tenant.id, owner.id]);
      assert.match(rows[0]!.password_hash, /^\$scrypt\$ln=15,r=8,p=1\$/);

      const events = await h.events(tenant.id);
      assert.deepEqual(events.map((e) => e.event_type), ["identity.tenant.created", "identity.user.created"]);
      assert.ok(events.every((e) => e.actor_type === "system" && e.request_id === callId));
      assert.equal(events[1]!.aggregate_id, owner.id);

      // A retry returns the first result; the same id for another request is refused.
      const again = ok(await h.call(protocol, M.createTenant, req, ADMIN_TOKEN));
      assert.equal(again.tenant!.id, tenant.id);
      assert.equal(again.owner!.id, owner.id);
      assert.equal((await h.events(tenant.id)).length, 2);
      assert.deepEqual(
        failure(await h.call(protocol, M.createTenant, { ...req, tenant: { ...req.tenant, slug: uniqueSlug() } }, ADMIN_TOKEN)),
        { code: "ALREADY_EXISTS", reason: "REQUEST_ID_REUSED" },
      );
      // Slugs are unique.
      assert.deepEqual(failure(await h.call(protocol, M.createTenant, { ...req, requestId: "" }, ADMIN_TOKEN)), {
        code: "ALREADY_EXISTS",
        reason: "RESOURCE_ALREADY_EXISTS",
      });
    });

    test("CreateTenant without a password invites the owner; bad input is INVALID_ARGUMENT with the field", async () => {
      const res = ok(await h.call(protocol, M.createTenant, { tenant: { slug: uniqueSlug(), displayName: "Inv" }, owner: { email: "inv@x.test" } }, ADMIN_TOKEN));
      assert.equal(res.owner!.state, UserState.INVITED);
      assert.equal(res.owner!.hasPassword, false);
      assert.equal(res.owner!.displayName, "inv");
      const withSettings = ok(
        await h.call(protocol, M.createTenant, { tenant: { slug: uniqueSlug(), displayName: "S", settings: { passwordLoginDisabled: true } }, owner: { email: "s@x.test" } }, ADMIN_TOKEN),
      );
      assert.deepEqual(withSettings.tenant!.settings?.protectedLabels, ["production"]);
      assert.equal(withSettings.tenant!.settings?.passwordLoginDisabled, true);

      const bad = await h.call(protocol, M.createTenant, { tenant: { slug: "-Bad_Slug", displayName: "X" }, owner: { email: "a@b.test" } }, ADMIN_TOKEN);
      assert.equal(failure(bad).code, "INVALID_ARGUMENT");
      if (protocol === "grpc" && !bad.ok) assert.ok(bad.fields.includes("tenant.slug"), bad.fields.join());
      const weak = await h.call(
        protocol,
        M.createTenant,
        { tenant: { slug: uniqueSlug(), displayName: "X" }, owner: { email: "a@b.test" }, ownerPassword: "aaaaaaaaaaaaaa" },
        ADMIN_TOKEN,
      );
      assert.deepEqual(failure(weak), { code: "INVALID_ARGUMENT", reason: "PASSWORD_POLICY" });
      if (protocol === "grpc" && !weak.ok) assert.deepEqual(weak.fields, ["owner_password"]);
    });

    test("GetTenant: any member reads their own tenant; another tenant is NOT_FOUND", async () => {
      const a = await h.tenantWith(["viewer"]);
      const b = await h.tenantWith(["owner"]);
      const own = ok(await h.call(protocol, M.getTenant, {}, a.users[0]!.token));
      assert.equal(own.id, a.tenantId);
      assert.equal(ok(await h.call(protocol, M.getTenant, { tenantId: a.tenantId }, a.users[0]!.token)).id, a.tenantId);
      assert.deepEqual(failure(await h.call(protocol, M.getTenant, { tenantId: a.tenantId }, b.users[0]!.token)), {
        code: "NOT_FOUND",
        reason: "RESOURCE_NOT_FOUND",
      });
      assert.deepEqual(failure(await h.call(protocol, M.getTenant, {})), { code: "UNAUTHENTICATED", reason: "CREDENTIALS_MISSING" });
    });

    test("GetTenant and UpdateTenant check a member's credential as every service does: API keys work, deactivated users and suspended tenants are refused", async () => {
      const t = await h.tenantWith(["admin", "viewer"]);
      const [admin, viewer] = t.users;
      const key = ok(await h.call(protocol, M.createApiKey, { apiKey: { displayName: "reader", role: Role.VIEWER } }, admin!.token)).secret;
      assert.equal(ok(await h.call(protocol, M.getTenant, {}, key)).id, t.tenantId);
      ok(await h.call(protocol, M.deactivateUser, { userId: viewer!.id }, admin!.token));
      // A new token (a new session id: nothing cached) of the deactivated user.
      const deactivated = await h.token(t.tenantId, viewer!.id, "viewer");
      assert.deepEqual(failure(await h.call(protocol, M.getTenant, {}, deactivated)), { code: "UNAUTHENTICATED", reason: "CREDENTIALS_REVOKED" });
      ok(await h.call(protocol, M.suspendTenant, { tenantId: t.tenantId, reason: "credential test" }, ADMIN_TOKEN));
      const suspended = await h.token(t.tenantId, admin!.id, "admin");
      assert.deepEqual(failure(await h.call(protocol, M.getTenant, {}, suspended)), { code: "UNAUTHENTICATED", reason: "TENANT_SUSPENDED" });
      const rename = { tenant: { displayName: "renamed" }, updateMask: { paths: ["display_name"] } };
      assert.deepEqual(failure(await h.call(protocol, M.updateTenant, rename, suspended)), { code: "UNAUTHENTICATED", reason: "TENANT_SUSPENDED" });
    });

    test("UpdateTenant: admins change name and settings with etags; plan and quotas need a platform admin", async () => {
      const t = await h.tenantWith(["admin", "editor"]);
      const [admin, editor] = t.users;
      const before = ok(await h.call(protocol, M.getTenant, {}, admin!.token));
      const updated = ok(
        await h.call(
          protocol,
          M.updateTenant,
          { tenant: { displayName: "Renamed", etag: before.etag, settings: { protectedLabels: ["prod", "staging"], passwordLoginDisabled: true } }, updateMask: { paths: ["display_name", "settings"] } },
          admin!.token,
        ),
      );
      assert.equal(updated.displayName, "Renamed");
      assert.deepEqual(updated.settings?.protectedLabels, ["prod", "staging"]);
      assert.equal(updated.settings?.passwordLoginDisabled, true);
      assert.notEqual(updated.etag, before.etag);
      // The old etag is stale now.
      assert.deepEqual(
        failure(await h.call(protocol, M.updateTenant, { tenant: { displayName: "Again", etag: before.etag }, updateMask: { paths: ["display_name"] } }, admin!.token)),
        { code: "ABORTED", reason: "ETAG_MISMATCH" },
      );
      // Changing nothing answers the current tenant, with the same etag, and writes no event.
      const eventsBefore = (await h.events(t.tenantId)).length;
      const same = ok(await h.call(protocol, M.updateTenant, { tenant: { displayName: "Renamed", etag: updated.etag }, updateMask: { paths: ["display_name"] } }, admin!.token));
      assert.equal(same.etag, updated.etag);
      assert.equal((await h.events(t.tenantId)).length, eventsBefore);
      assert.deepEqual(
        failure(await h.call(protocol, M.updateTenant, { tenant: { plan: "enterprise" }, updateMask: { paths: ["plan"] } }, admin!.token)),
        { code: "PERMISSION_DENIED", reason: "PLATFORM_ADMIN_REQUIRED" },
      );
      assert.deepEqual(
        failure(await h.call(protocol, M.updateTenant, { tenant: { displayName: "Nope" }, updateMask: { paths: ["display_name"] } }, editor!.token)),
        { code: "PERMISSION_DENIED", reason: "PERMISSION_INSUFFICIENT" },
      );
      const other = await h.tenantWith(["owner"]);
      assert.deepEqual(
        failure(await h.call(protocol, M.updateTenant, { tenant: { id: t.tenantId, displayName: "Hijack" }, updateMask: { paths: ["display_name"] } }, other.users[0]!.token)),
        { code: "NOT_FOUND", reason: "RESOURCE_NOT_FOUND" },
      );
      const cleared = ok(await h.call(protocol, M.updateTenant, { tenant: { settings: {} }, updateMask: { paths: ["settings"] } }, admin!.token));
      assert.deepEqual(cleared.settings?.protectedLabels, []);
      const events = (await h.events(t.tenantId)).filter((e) => e.event_type === "identity.tenant.updated").slice(0, 1);
      assert.equal(events.length, 1);
      assert.equal(events[0]!.actor_id, admin!.id);
      assert.deepEqual(events[0]!.payload.fields, ["name", "settings"]);
    });

    test("ListTenants: platform admin only; every tenant once, oldest first, in pages; state filter; bad tokens", async () => {
      const member = await h.tenantWith(["owner"]);
      assert.deepEqual(failure(await h.call(protocol, M.listTenants, {})), { code: "UNAUTHENTICATED", reason: "CREDENTIALS_MISSING" });
      assert.deepEqual(failure(await h.call(protocol, M.listTenants, {}, member.users[0]!.token)), { code: "PERMISSION_DENIED", reason: "PLATFORM_ADMIN_REQUIRED" });
      const mine = [(await h.tenantWith([])).tenantId, (await h.tenantWith([])).tenantId, (await h.tenantWith([])).tenantId];
      ok(await h.call(protocol, M.suspendTenant, { tenantId: mine[1]!, reason: "list test" }, ADMIN_TOKEN));

      // Other test files create tenants meanwhile: walk everything and look at ours.
      const all: { id: string; createTime: bigint; state: TenantState }[] = [];
      let pageToken = "";
      do {
        const page = ok(await h.call(protocol, M.listTenants, { pageSize: 1000, pageToken }, ADMIN_TOKEN));
        for (const t of page.tenants) all.push({ id: t.id, createTime: microsOf(t.createTime!), state: t.state });
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      const ids = all.map((t) => t.id);
      assert.equal(new Set(ids).size, ids.length, "no tenant twice");
      const positions = mine.map((id) => ids.indexOf(id));
      assert.ok(positions.every((p) => p >= 0), "ours are listed");
      const ours = all[positions[0]!]!;
      assert.equal(ours.createTime, await h.columnMicros(ours.id, "tenant", "created_at", ours.id), "create_time to the microsecond");
      assert.deepEqual([...positions].sort((a, b) => a - b), positions, "in creation order");
      for (let i = 1; i < all.length; i++) assert.ok(all[i - 1]!.createTime <= all[i]!.createTime, "oldest first");

      // Small pages continue exactly where the previous page ended.
      const first = ok(await h.call(protocol, M.listTenants, { pageSize: 2 }, ADMIN_TOKEN));
      assert.equal(first.tenants.length, 2);
      const second = ok(await h.call(protocol, M.listTenants, { pageSize: 2, pageToken: first.nextPageToken }, ADMIN_TOKEN));
      const start = ids.indexOf(first.tenants[0]!.id);
      assert.deepEqual([...first.tenants, ...second.tenants].map((t) => t.id), ids.slice(start, start + first.tenants.length + second.tenants.length));

      const suspended = [];
      pageToken = "";
      do {
        const page = ok(await h.call(protocol, M.listTenants, { pageSize: 1000, pageToken, state: TenantState.SUSPENDED }, ADMIN_TOKEN));
        suspended.push(...page.tenants);
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      assert.ok(suspended.every((t) => t.state === TenantState.SUSPENDED));
      assert.ok(suspended.some((t) => t.id === mine[1]));
      assert.ok(!suspended.some((t) => t.id === mine[0] || t.id === mine[2]));

      // A token is bound to the filter it was issued for; a forged one is refused, never a database error.
      assert.deepEqual(failure(await h.call(protocol, M.listTenants, { pageSize: 2, pageToken: first.nextPageToken, state: TenantState.ACTIVE }, ADMIN_TOKEN)), {
        code: "INVALID_ARGUMENT",
        reason: "PAGE_TOKEN_INVALID",
      });
      await assertForgedPageTokensRefused(first.nextPageToken, (pageToken) => h.call(protocol, M.listTenants, { pageSize: 2, pageToken }, ADMIN_TOKEN));
      assert.deepEqual(failure(await h.call(protocol, M.listTenants, { pageToken: "%%%" }, ADMIN_TOKEN)), { code: "INVALID_ARGUMENT", reason: "PAGE_TOKEN_INVALID" });
      const tooBig = await h.call(protocol, M.listTenants, { pageSize: 1001 }, ADMIN_TOKEN);
      assert.equal(failure(tooBig).code, "INVALID_ARGUMENT");
      if (protocol === "grpc") assert.deepEqual(tooBig.ok ? [] : tooBig.fields, ["page_size"]);
    });

    test("GetTenant and UpdateTenant for the platform admin: any tenant by id, plan and quotas, single quota and setting paths", async () => {
      const t = await h.tenantWith(["admin"]);
      const [admin] = t.users;
      const got = ok(await h.call(protocol, M.getTenant, { tenantId: t.tenantId }, ADMIN_TOKEN));
      assert.equal(got.id, t.tenantId);
      const noId = await h.call(protocol, M.getTenant, {}, ADMIN_TOKEN);
      assert.equal(failure(noId).code, "INVALID_ARGUMENT");
      if (protocol === "grpc") assert.deepEqual(noId.ok ? [] : noId.fields, ["tenant_id"]);
      assert.deepEqual(failure(await h.call(protocol, M.getTenant, { tenantId: randomUUID() }, ADMIN_TOKEN)), { code: "NOT_FOUND", reason: "RESOURCE_NOT_FOUND" });
      // Not the admin secret: judged as a member's credential, which it is not.
      assert.deepEqual(failure(await h.call(protocol, M.getTenant, { tenantId: t.tenantId }, `${ADMIN_TOKEN}x`)), {
        code: "UNAUTHENTICATED",
        reason: "CREDENTIALS_INVALID",
      });

      const planned = ok(
        await h.call(
          protocol,
          M.updateTenant,
          { tenant: { id: t.tenantId, plan: "enterprise", quotas: { maxUsers: 50, maxApiKeys: 5 } }, updateMask: { paths: ["plan", "quotas"] } },
          ADMIN_TOKEN,
        ),
      );
      assert.equal(planned.plan, "enterprise");
      assert.equal(planned.quotas?.maxUsers, 50);
      assert.equal(planned.quotas?.maxApiKeys, 5);
      // One quota changes, the other stays; a named but unset quota is cleared (unlimited).
      const one = ok(await h.call(protocol, M.updateTenant, { tenant: { id: t.tenantId, quotas: { maxUsers: 60 } }, updateMask: { paths: ["quotas.max_users"] } }, ADMIN_TOKEN));
      assert.equal(one.quotas?.maxUsers, 60);
      assert.equal(one.quotas?.maxApiKeys, 5);
      const cleared = ok(await h.call(protocol, M.updateTenant, { tenant: { id: t.tenantId }, updateMask: { paths: ["quotas.max_api_keys"] } }, ADMIN_TOKEN));
      assert.equal(cleared.quotas?.maxApiKeys, undefined);
      assert.equal(cleared.quotas?.maxUsers, 60);
      // The monthly render and event limits (analytics measures them) take single paths too.
      const monthly = ok(
        await h.call(protocol, M.updateTenant, { tenant: { id: t.tenantId, quotas: { maxMonthlyRenders: 1000n, maxMonthlyEvents: 5000n } }, updateMask: { paths: ["quotas.max_monthly_renders", "quotas.max_monthly_events"] } }, ADMIN_TOKEN),
      );
      assert.deepEqual([monthly.quotas?.maxMonthlyRenders, monthly.quotas?.maxMonthlyEvents, monthly.quotas?.maxUsers], [1000n, 5000n, 60]);
      // Members: one setting alone keeps the others; a single quota still needs the platform admin.
      const labelled = ok(
        await h.call(protocol, M.updateTenant, { tenant: { settings: { protectedLabels: ["prod"], passwordLoginDisabled: true } }, updateMask: { paths: ["settings.protected_labels"] } }, admin!.token),
      );
      assert.deepEqual(labelled.settings?.protectedLabels, ["prod"]);
      assert.equal(labelled.settings?.passwordLoginDisabled, false, "not in the mask: unchanged");
      assert.deepEqual(failure(await h.call(protocol, M.updateTenant, { tenant: { quotas: { maxUsers: 1000 } }, updateMask: { paths: ["quotas.max_users"] } }, admin!.token)), {
        code: "PERMISSION_DENIED",
        reason: "PLATFORM_ADMIN_REQUIRED",
      });
      const badPath = await h.call(protocol, M.updateTenant, { tenant: { id: t.tenantId }, updateMask: { paths: ["quotas.nope"] } }, ADMIN_TOKEN);
      assert.equal(failure(badPath).code, "INVALID_ARGUMENT");
      if (protocol === "grpc") assert.deepEqual(badPath.ok ? [] : badPath.fields, ["update_mask"]);
      const noTenant = await h.call(protocol, M.updateTenant, { tenant: { plan: "team" }, updateMask: { paths: ["plan"] } }, ADMIN_TOKEN);
      assert.equal(failure(noTenant).code, "INVALID_ARGUMENT");
      if (protocol === "grpc") assert.deepEqual(noTenant.ok ? [] : noTenant.fields, ["tenant.id"]);
      // `*` means every field for the platform admin, and the etag still guards.
      const all = ok(
        await h.call(protocol, M.updateTenant, { tenant: { id: t.tenantId, displayName: "Star", plan: "team", etag: labelled.etag }, updateMask: { paths: ["*"] } }, ADMIN_TOKEN),
      );
      assert.equal(all.plan, "team");
      assert.equal(all.displayName, "Star");
      assert.deepEqual([all.quotas?.maxUsers, all.quotas?.maxApiKeys], [undefined, undefined], "quotas replaced by the empty ones of the request");
      assert.deepEqual(failure(await h.call(protocol, M.updateTenant, { tenant: { id: t.tenantId, plan: "free", etag: labelled.etag }, updateMask: { paths: ["plan"] } }, ADMIN_TOKEN)), {
        code: "ABORTED",
        reason: "ETAG_MISMATCH",
      });
      const events = (await h.events(t.tenantId)).filter((e) => e.event_type === "identity.tenant.updated");
      assert.deepEqual(events.map((e) => [e.actor_type, e.payload.fields]), [
        ["system", ["plan", "quotas"]],
        ["system", ["quotas"]],
        ["system", ["quotas"]],
        ["system", ["quotas"]],
        ["user", ["settings"]],
        ["system", ["name", "plan", "quotas", "settings"]],
      ]);
    });

    test("SuspendTenant / ResumeTenant: state, suspend_time, suspend_reason, idempotent, etag, events", async () => {
      const t = await h.tenantWith(["owner"]);
      const suspended = ok(await h.call(protocol, M.suspendTenant, { tenantId: t.tenantId, reason: "unpaid" }, ADMIN_TOKEN));
      assert.equal(suspended.state, TenantState.SUSPENDED);
      assert.ok(suspended.suspendTime);
      assert.equal(suspended.suspendReason, "unpaid");
      // Stored: GetTenant and ListTenants show it.
      assert.equal(ok(await h.call(protocol, M.getTenant, { tenantId: t.tenantId }, ADMIN_TOKEN)).suspendReason, "unpaid");
      const listed = [];
      for (let pageToken = ""; ; ) {
        const page = ok(await h.call(protocol, M.listTenants, { pageSize: 1000, pageToken, state: TenantState.SUSPENDED }, ADMIN_TOKEN));
        listed.push(...page.tenants);
        if (!(pageToken = page.nextPageToken)) break;
      }
      assert.equal(listed.find((x) => x.id === t.tenantId)?.suspendReason, "unpaid");
      // Idempotent: suspending again changes nothing, not even the reason.
      const again = ok(await h.call(protocol, M.suspendTenant, { tenantId: t.tenantId, reason: "other" }, ADMIN_TOKEN));
      assert.equal(again.etag, suspended.etag);
      assert.equal(again.suspendReason, "unpaid");
      assert.deepEqual(badFields(await h.call(protocol, M.suspendTenant, { tenantId: t.tenantId, reason: "   " }, ADMIN_TOKEN)), ["reason"]);
      assert.deepEqual(failure(await h.call(protocol, M.resumeTenant, { tenantId: t.tenantId, etag: "999" }, ADMIN_TOKEN)), {
        code: "ABORTED",
        reason: "ETAG_MISMATCH",
      });
      const resumed = ok(await h.call(protocol, M.resumeTenant, { tenantId: t.tenantId, etag: suspended.etag }, ADMIN_TOKEN));
      assert.equal(resumed.state, TenantState.ACTIVE);
      assert.equal(resumed.suspendTime, undefined);
      assert.equal(resumed.suspendReason, "", "resuming clears the reason");
      assert.equal(ok(await h.call(protocol, M.getTenant, { tenantId: t.tenantId }, ADMIN_TOKEN)).suspendReason, "");
      assert.deepEqual(failure(await h.call(protocol, M.suspendTenant, { tenantId: randomUUID(), reason: "x" }, ADMIN_TOKEN)), {
        code: "NOT_FOUND",
        reason: "RESOURCE_NOT_FOUND",
      });
      const events = await h.events(t.tenantId);
      assert.deepEqual(events.map((e) => e.event_type), ["identity.tenant.suspended", "identity.tenant.resumed"]);
      assert.equal(events[0]!.payload.reason, "unpaid");
    });
  });
}
