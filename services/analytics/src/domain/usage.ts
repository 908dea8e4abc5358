import { isConnectionError, withTenant, withServiceRole, type Knex } from "@promptcraft/db";
import { InvalidArgumentError, PermissionDeniedError, requireCallerRole, type CallerContext, type FieldViolation } from "@promptcraft/platform";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import { insertUsageEvents, switchTenant, usagePartitionRanges, type NewUsageEvent, type PartitionRange } from "../store/usage.js";

/**
 * Usage ingest (issue 11, point 1): each batch is checked whole, then stored in one transaction,
 * idempotent per (tenant, event id) — see store/usage.ts. Who reports decides the tenant: a member
 * (user or API key) reports for its own tenant only; a service (the service credential) names the
 * tenant of each event.
 */

/** A usage event as a request carries it (the handler's mapping of the contract's UsageEvent). */
export interface IncomingUsageEvent {
  id: string;
  /** Empty: the caller's tenant. Only a service caller must (and may) name another. */
  tenantId: string;
  /** Empty: the calling user (none for an API key or a service). */
  userId: string;
  entityId: string;
  entityVersion: number | undefined;
  label: string;
  kind: string;
  model: string;
  tokensIn: number;
  tokensOut: number;
  costMicros: bigint;
  latencyMs: number | null;
  occurredAt: Date;
  metadata: Record<string, unknown> | undefined;
  requestId: string;
}

/** What a batch did: how many events were stored, and the ids already stored before (in request order). */
export interface IngestResult {
  accepted: number;
  duplicateIds: string[];
}

/** How far ahead of the server's clock an event may be (clock skew between producers). */
export const MAX_FUTURE_MS = 5 * 60_000;
/** Largest serialized `metadata` of one event (the contract's 16 KiB). */
export const MAX_METADATA_BYTES = 16 * 1024;
/** How long the partition ranges are reused before the catalog is read again (maintenance adds a day at a time). */
export const PARTITION_CACHE_MS = 60_000;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The ingest of one analytics process. It keeps the ranges of `usage_event`'s partitions (read
 * from the catalog at most every {@link PARTITION_CACHE_MS}, and again before refusing a time), so
 * an event outside every partition is refused as EVENT_TIME_OUT_OF_RANGE before anything is
 * written, never as an INTERNAL failure of the insert.
 */
export class UsageIngest {
  private ranges: { value: PartitionRange[]; readAt: number } | undefined;

  constructor(
    private readonly db: Knex,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Checks and stores one batch atomically: a bad event fails the whole batch (INVALID_ARGUMENT
   * naming `<prefix>[i].<field>`, PERMISSION_DENIED for another tenant or user), before anything
   * is written. `signal` stops the transaction (the call's).
   */
  async ingest(caller: CallerContext, events: readonly IncomingUsageEvent[], signal?: AbortSignal, prefix = "events"): Promise<IngestResult> {
    const violations: FieldViolation[] = [];
    const byTenant = new Map<string, NewUsageEvent[]>();
    for (const [i, e] of events.entries()) {
      const tenantId = this.tenantOf(caller, e, `${prefix}[${i}].tenant_id`, violations);
      const userId = userOf(caller, e);
      const metadata = e.metadata ?? {};
      if (Buffer.byteLength(JSON.stringify(metadata), "utf8") > MAX_METADATA_BYTES) {
        violations.push({ field: `${prefix}[${i}].metadata`, description: `must be at most ${MAX_METADATA_BYTES} bytes as JSON` });
      }
      if (tenantId === undefined) continue;
      const list = byTenant.get(tenantId) ?? [];
      list.push({
        id: e.id.toLowerCase(),
        occurredAt: e.occurredAt,
        kind: e.kind,
        userId,
        apiKeyId: caller.kind === "api_key" ? (caller.credentialId ?? null) : null,
        entityId: e.entityId || null,
        entityVersion: e.entityVersion ?? null,
        label: e.label || null,
        model: e.model || null,
        tokensIn: e.tokensIn,
        tokensOut: e.tokensOut,
        costMicros: e.costMicros,
        latencyMs: e.latencyMs,
        metadata,
        requestId: e.requestId || null,
      });
      byTenant.set(tenantId, list);
    }
    const latest = this.now() + MAX_FUTURE_MS;
    for (const [i, e] of events.entries()) {
      if (e.occurredAt.getTime() > latest) violations.push({ field: `${prefix}[${i}].occur_time`, description: "must not be more than 5 minutes in the future" });
    }
    for (const i of await this.outsidePartitions(events, signal)) {
      if (events[i]!.occurredAt.getTime() > latest) continue;
      violations.push({ field: `${prefix}[${i}].occur_time`, description: "outside the daily partitions kept (see UsageEvent.occur_time)" });
    }
    if (violations.length > 0) {
      const timeOnly = violations.every((v) => v.field.endsWith(".occur_time"));
      throw new InvalidArgumentError(violations, { reason: timeOnly ? ErrorReason.EVENT_TIME_OUT_OF_RANGE : ErrorReason.INVALID_REQUEST });
    }
    const groups = [...byTenant];
    if (groups.length === 0) return { accepted: 0, duplicateIds: [] };
    let stored = new Set<string>();
    try {
      stored = await withTenant(this.db, { service: "analytics", tenantId: groups[0]![0], userId: caller.userId ?? null, signal }, async (trx) => {
        const all = new Set<string>();
        for (const [n, [tenantId, rows]] of groups.entries()) {
          if (n > 0) await switchTenant(trx, tenantId);
          for (const id of await insertUsageEvents(trx, tenantId, rows)) all.add(`${tenantId}/${id}`);
        }
        return all;
      });
    } catch (err) {
      // A partition dropped or not yet created since the ranges were read (23514, "no partition of
      // relation … found for row"): the caller's times, not our failure.
      if (!isConnectionError(err) && (err as { code?: string }).code === "23514" && /no partition/i.test((err as Error).message)) {
        this.ranges = undefined;
        throw new InvalidArgumentError({ field: `${prefix}`, description: "an event's occur_time has no partition any more; retry" }, { reason: ErrorReason.EVENT_TIME_OUT_OF_RANGE });
      }
      throw err;
    }
    const duplicateIds: string[] = [];
    for (const [tenantId, rows] of groups) {
      for (const row of rows) if (!stored.has(`${tenantId}/${row.id}`)) duplicateIds.push(row.id);
    }
    return { accepted: stored.size, duplicateIds: orderLike(events, duplicateIds) };
  }

  private tenantOf(caller: CallerContext, e: IncomingUsageEvent, field: string, violations: FieldViolation[]): string | undefined {
    if (caller.kind === "service") {
      if (!UUID.test(e.tenantId)) {
        violations.push({ field, description: "a service must name the tenant of each event (a UUID)" });
        return undefined;
      }
      return e.tenantId.toLowerCase();
    }
    if (e.tenantId !== "" && e.tenantId.toLowerCase() !== caller.tenantId.toLowerCase()) {
      throw new PermissionDeniedError("usage can only be reported for the caller's own tenant", { reason: ErrorReason.PERMISSION_INSUFFICIENT });
    }
    return caller.tenantId;
  }

  /** Indexes of the events whose time no partition covers (re-reading the catalog once before refusing). */
  private async outsidePartitions(events: readonly IncomingUsageEvent[], signal?: AbortSignal): Promise<number[]> {
    const find = (ranges: PartitionRange[]) => events.flatMap((e, i) => (covered(ranges, e.occurredAt) ? [] : [i]));
    const cached = this.ranges && this.now() - this.ranges.readAt < PARTITION_CACHE_MS ? this.ranges.value : undefined;
    if (cached !== undefined) {
      const outside = find(cached);
      if (outside.length === 0) return outside;
    }
    const value = await withServiceRole(this.db, "analytics", usagePartitionRanges, { signal });
    this.ranges = { value, readAt: this.now() };
    return find(value);
  }
}

/** The user an event is attributed to: empty means the calling user; naming another needs the admin role. */
function userOf(caller: CallerContext, e: IncomingUsageEvent): string | null {
  if (e.userId === "") return caller.kind === "access_token" ? (caller.userId ?? null) : null;
  if (caller.kind !== "service" && e.userId.toLowerCase() !== caller.userId?.toLowerCase()) requireCallerRole(caller, "admin");
  return e.userId.toLowerCase();
}

function covered(ranges: readonly PartitionRange[], t: Date): boolean {
  const ms = t.getTime();
  // Few dozen ranges at most: a scan is cheaper than keeping them merged.
  return ranges.some((r) => r.from.getTime() <= ms && ms < r.to.getTime());
}

function orderLike(events: readonly IncomingUsageEvent[], ids: string[]): string[] {
  if (ids.length < 2) return ids;
  const set = new Set(ids);
  return events.map((e) => e.id.toLowerCase()).filter((id) => set.has(id));
}
