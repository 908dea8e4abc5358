import { isIPv4, isIPv6 } from "node:net";

/** Throttling thresholds (identity config LOGIN_THROTTLE_*). */
export interface ThrottlePolicy {
  /** Failures per account allowed within the window before blocking starts. */
  accountFailures: number;
  /** Failures per client address allowed within the window before blocking starts. */
  addressFailures: number;
  /** First block, seconds; doubles with every further failure. */
  baseDelayS: number;
  /** Longest block, seconds. */
  maxDelayS: number;
  /** Failures older than this (since the last one) are forgotten. */
  windowS: number;
}

export type ThrottleScope = "account" | "address";

/** A `login_throttle` row as the domain sees it. */
export interface ThrottleState {
  failureCount: number;
  lastFailureAt: Date;
  blockedUntil: Date | null;
}

/**
 * How long (ms) a login for this key must wait, or 0 if it may proceed now. Blocks end by
 * themselves; a counter whose last failure is older than the window no longer counts.
 */
export function retryAfterMs(state: ThrottleState | undefined, now: Date): number {
  if (!state?.blockedUntil) return 0;
  return Math.max(0, state.blockedUntil.getTime() - now.getTime());
}

/**
 * The counter after one more failure: the count (reset if the previous failure left the window)
 * and, past the allowance, a block of base·2^(excess−1) seconds, at most max. So attempts are first
 * slowed (one try per growing interval) and, as failures continue, refused for up to max.
 */
export function afterFailure(
  state: ThrottleState | undefined,
  scope: ThrottleScope,
  policy: ThrottlePolicy,
  now: Date,
): { failureCount: number; blockedUntil: Date | null; resetWindow: boolean } {
  const stale = !state || now.getTime() - state.lastFailureAt.getTime() > policy.windowS * 1000;
  const failureCount = (stale ? 0 : state.failureCount) + 1;
  const allowance = scope === "account" ? policy.accountFailures : policy.addressFailures;
  const excess = failureCount - allowance;
  if (excess <= 0) return { failureCount, blockedUntil: null, resetWindow: stale };
  const delayS = Math.min(policy.maxDelayS, policy.baseDelayS * 2 ** Math.min(excess - 1, 30));
  return { failureCount, blockedUntil: new Date(now.getTime() + delayS * 1000), resetWindow: stale };
}

/** The account key: `<tenant id or "slug:<slug>" for an unknown tenant>:<lower-case email>`. */
export function accountKey(tenant: { id: string } | { slug: string }, email: string): string {
  const who = "id" in tenant ? tenant.id : `slug:${tenant.slug}`;
  return `${who}:${email.trim().toLowerCase()}`.slice(0, 400);
}

/**
 * The address key of a peer (`ip:port`, `[ipv6]:port` or `ipv6:port`): the IPv4 address, or the
 * IPv6 /64 prefix (a host usually controls a whole /64). IPv4-mapped IPv6 counts as IPv4.
 * Undefined when there is no usable address.
 */
export function addressKey(peer: string | undefined): string | undefined {
  const host = peerHost(peer);
  if (host === undefined || isIPv4(host)) return host;
  return `${expandIPv6(host).slice(0, 4).join(":")}::/64`;
}

/** The IP address of a peer (`ip:port`, `[ipv6]:port` or `ipv6:port`), IPv4-mapped IPv6 as IPv4; undefined if none. */
export function peerHost(peer: string | undefined): string | undefined {
  if (!peer) return undefined;
  let host = peer.trim();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(host);
  if (bracketed) host = bracketed[1]!;
  else if (!isIPv4(host) && !isIPv6(host)) {
    const colon = host.lastIndexOf(":");
    if (colon > 0 && /^\d+$/.test(host.slice(colon + 1))) host = host.slice(0, colon);
  }
  host = host.replace(/%.*$/, "");
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(host);
  if (mapped) host = mapped[1]!;
  return isIPv4(host) || isIPv6(host) ? host : undefined;
}

/** The eight 16-bit groups of an IPv6 address, lower-case hex without leading zeros. */
function expandIPv6(address: string): string[] {
  let text = address.toLowerCase();
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4[1]!.split(".").map(Number) as [number, number, number, number];
    text = text.slice(0, -v4[1]!.length) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split("::") as [string, string | undefined];
  const h = head ? head.split(":") : [];
  const t = tail === undefined ? [] : tail ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t];
  return groups.map((g) => parseInt(g || "0", 16).toString(16));
}
