import { withServiceRole, type Knex } from "@promptcraft/db";
import { startIntervalJob, type IntervalJob, type Logger } from "@promptcraft/platform";
import * as store from "../store/housekeeping.js";
import { rotateKey } from "../store/signing-keys.js";
import { API_KEY_RETRY_WINDOW_S } from "./api-keys.js";
import { generateSigningKey, PUBLISH_AFTER_RETIREMENT_S } from "./signing-keys.js";

/**
 * Identity's housekeeping (issue 3): a sweep every `HOUSEKEEPING_INTERVAL_S` in one replica at a
 * time (a transaction-scoped advisory lock; the others skip that round):
 *
 * - the signing key rotates once it has signed for `SIGNING_KEY_ROTATION_DAYS` (0: never);
 * - retired signing keys whose tokens have all expired (out of the JWK Set) are deleted;
 * - login-throttle counters whose window is over and that block nothing are deleted;
 * - per tenant: invitations expired more than {@link RETENTION_MS} ago, sessions that ended (absolute
 *   expiry, revocation, idle expiry of their last token) more than {@link RETENTION_MS} ago, and the
 *   encrypted secrets of API keys past their retry window.
 *
 * The audit log keeps the history of all of these; the rows only serve live credentials.
 */

/** How long ended sessions and expired invitations stay (ListSessions `show_inactive`, support). */
export const RETENTION_MS = 30 * 86_400_000;
/** Arbitrary constant naming the housekeeping lock among PostgreSQL advisory locks. */
export const HOUSEKEEPING_LOCK_KEY = 0x1d3e7_0001;
/** Tenants cleaned per page of `admin_list_tenants`. */
const TENANT_PAGE = 500;

export interface SweepSettings {
  /** Rotate the signing key after this many days of signing; 0 disables scheduled rotation. */
  rotationDays: number;
  /** The login-throttle window (counters older than it are stale). */
  throttleWindowS: number;
}

export interface SweepResult {
  rotated: boolean;
  signingKeys: number;
  throttles: number;
  invitations: number;
  sessions: number;
  retrySecrets: number;
}

/**
 * One sweep as of `now`, in one transaction; undefined if another replica is sweeping. A due
 * rotation happens in it too (a new key encrypted with `kek`); replicas pick the new signing key up
 * within `SIGNER_CACHE_MS`, as after RotateSigningKey on another replica. `signal` stops it (rolled back).
 */
export async function sweep(db: Knex, kek: Buffer, settings: SweepSettings, now: Date, log?: Logger, signal?: AbortSignal): Promise<SweepResult | undefined> {
  return withServiceRole(db, "identity", async (trx) => {
    if (!(await store.tryHousekeepingLock(trx, HOUSEKEEPING_LOCK_KEY))) return undefined;
    const since = await store.activeKeySince(trx);
    const rotate = settings.rotationDays > 0 && since !== undefined && now.getTime() - since.getTime() >= settings.rotationDays * 86_400_000;
    if (rotate) {
      const next = await rotateKey(trx, (await generateSigningKey(kek)).key, PUBLISH_AFTER_RETIREMENT_S);
      log?.info({ kid: next.kid, previous_activated_at: since }, "scheduled rotation of the access-token signing key");
    }
    const result: SweepResult = {
      rotated: rotate,
      signingKeys: await store.pruneSigningKeys(trx, now),
      throttles: await store.pruneThrottles(trx, now, settings.throttleWindowS),
      invitations: 0,
      sessions: 0,
      retrySecrets: 0,
    };
    const cutoff = new Date(now.getTime() - RETENTION_MS);
    const retryCutoff = new Date(now.getTime() - API_KEY_RETRY_WINDOW_S * 1000);
    let after: { createdAt: Date; id: string } | undefined;
    for (;;) {
      const tenants = await store.tenantIdsAfter(trx, after, TENANT_PAGE);
      for (const tenant of tenants) {
        await store.enterTenant(trx, tenant.id);
        result.invitations += await store.pruneInvitations(trx, tenant.id, cutoff);
        result.sessions += await store.pruneSessions(trx, tenant.id, cutoff);
        result.retrySecrets += await store.clearRetrySecrets(trx, tenant.id, retryCutoff);
      }
      const last = tenants[tenants.length - 1];
      if (tenants.length < TENANT_PAGE || !last) break;
      after = { createdAt: last.created_at, id: last.id };
    }
    log?.info(result, "identity housekeeping");
    return result;
  }, { signal });
}

/**
 * Runs {@link sweep} every `intervalMs` (first after one interval); `stop()` cancels the timer and
 * a running sweep (its statement is cancelled, its transaction rolled back: the next sweep, here
 * or on another replica, does the work) and waits for it to unwind. A failed sweep is logged and
 * retried at the next tick.
 */
export function startHousekeeping(db: Knex, kek: Buffer, settings: SweepSettings, intervalMs: number, log: Logger): IntervalJob {
  return startIntervalJob("identity housekeeping", intervalMs, (signal) => sweep(db, kek, settings, new Date(), log, signal), log);
}
