import type { Knex } from "@promptcraft/db";
import { afterFailure, type ThrottlePolicy, type ThrottleScope, type ThrottleState } from "../domain/login-throttle.js";

/** One counter to read or bump: its scope and key. */
export interface ThrottleKey {
  scope: ThrottleScope;
  key: string;
}

interface Row {
  scope: ThrottleScope;
  key: string;
  failure_count: number;
  last_failure_at: Date;
  blocked_until: Date | null;
}

/** The counters of `keys` (a platform table: any identity transaction may read it). */
export async function readThrottles(trx: Knex.Transaction, keys: readonly ThrottleKey[]): Promise<Map<string, ThrottleState>> {
  const out = new Map<string, ThrottleState>();
  if (keys.length === 0) return out;
  const rows = await trx<Row>("login_throttle")
    .select("scope", "key", "failure_count", "last_failure_at", "blocked_until")
    .where((q) => {
      for (const k of keys) void q.orWhere({ scope: k.scope, key: k.key });
    });
  for (const r of rows) {
    out.set(`${r.scope}\u0000${r.key}`, {
      failureCount: Number(r.failure_count),
      lastFailureAt: new Date(r.last_failure_at),
      blockedUntil: r.blocked_until ? new Date(r.blocked_until) : null,
    });
  }
  return out;
}

export const throttleMapKey = (k: ThrottleKey) => `${k.scope}\u0000${k.key}`;

/** Records one failure on each key (row locked, so concurrent failures all count). */
export async function recordFailures(trx: Knex.Transaction, keys: readonly ThrottleKey[], policy: ThrottlePolicy): Promise<void> {
  for (const k of keys) {
    await trx.raw("insert into login_throttle (scope, key, failure_count) values (?, ?, 0) on conflict (scope, key) do nothing", [k.scope, k.key]);
    const row = await trx<Row>("login_throttle").select("failure_count", "last_failure_at", "blocked_until").where({ scope: k.scope, key: k.key }).forUpdate().first();
    // Server clock for both sides of the comparison (database now() and Date differ slightly).
    const now = new Date();
    const state: ThrottleState | undefined =
      row && Number(row.failure_count) > 0
        ? { failureCount: Number(row.failure_count), lastFailureAt: new Date(row.last_failure_at), blockedUntil: row.blocked_until }
        : undefined;
    const next = afterFailure(state, k.scope, policy, now);
    await trx("login_throttle")
      .where({ scope: k.scope, key: k.key })
      .update({
        failure_count: next.failureCount,
        last_failure_at: now,
        blocked_until: next.blockedUntil,
        ...(next.resetWindow ? { first_failure_at: now } : {}),
      });
  }
}

/** Forgets the counters of `keys` (a successful login resets its account). */
export async function clearThrottles(trx: Knex.Transaction, keys: readonly ThrottleKey[]): Promise<void> {
  for (const k of keys) await trx("login_throttle").where({ scope: k.scope, key: k.key }).delete();
}
