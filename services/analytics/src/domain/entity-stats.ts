import { withTenant, type Knex } from "@promptcraft/db";
import { CURSOR_UUID, decodePageCursor, InvalidArgumentError, NotFoundError, pageOf, pageSizeOf, type CallerContext } from "@promptcraft/platform";
import {
  entityStatsRefreshTime,
  entityUsage,
  favoriteCount,
  labelWindowFigures,
  listEntities,
  type EntityStatsOrder,
  type EntityUsageRow,
  type WindowFigures,
} from "../store/entity-stats.js";
import { EMPTY_FIGURES, figuresOf, type UsageFigures } from "./summaries.js";

/**
 * Entity statistics and change-aware analytics (issue 11, point 3): usage per entity and per
 * version from the rollups plus the not-yet-rolled tail (so an event counts as soon as its ingest
 * is acknowledged), favorites from the read model `entity_stats` with its refresh time (point 5),
 * and what content alone knows — who may view an entity, its title, its label history — asked of
 * the content service with the caller's credentials ({@link ContentDirectory}).
 */

/** An entity as the content service shows it to the caller. */
export interface EntityInfo {
  id: string;
  /** Stored type name: `context`, `template`, `workflow`, `library`. */
  type: string;
  title: string;
  currentVersion: number;
}

/** One change of a label (content's label history). */
export interface LabelChange {
  type: "set" | "moved" | "removed";
  fromVersion: number | null;
  toVersion: number | null;
  actorId: string;
  time: Date;
}

/**
 * The content service as analytics needs it, asked on behalf of the caller (the caller's own
 * credentials), so that content decides what the caller may see. Failures to reach it are
 * UNAVAILABLE (DEPENDENCY_UNAVAILABLE, RetryInfo).
 */
export interface ContentDirectory {
  /** The entity, or null when it does not exist or the caller may not view it. */
  getEntity(entityId: string): Promise<EntityInfo | null>;
  /** Those of `entityIds` the caller may view (deleted ones included). */
  getEntities(entityIds: readonly string[]): Promise<Map<string, EntityInfo>>;
  /**
   * The history of one label of an entity, newest first, read page by page as the consumer
   * iterates; NotFoundError when the entity does not exist or the caller may not view it.
   */
  labelHistory(entityId: string, label: string): AsyncIterable<LabelChange>;
}

/** Usage statistics of one version (0: usage without a version). */
export interface VersionStats {
  version: number;
  viewCount: bigint;
  renderCount: bigint;
  executeCount: bigint;
  llmCallCount: bigint;
  figures: UsageFigures;
  firstUse: Date | null;
  lastUse: Date | null;
}

export interface EntityStats {
  entityId: string;
  /** Stored type name; null when unknown (content unreachable and the read model lacks it). */
  entityType: string | null;
  /** Empty when the caller may not view the entity (lists) or content could not say. */
  title: string;
  versionCount: number;
  favoriteCount: bigint;
  viewCount: bigint;
  renderCount: bigint;
  executeCount: bigint;
  llmCallCount: bigint;
  figures: UsageFigures;
  firstUse: Date | null;
  lastUse: Date | null;
  versions: VersionStats[];
  /** When the read model (favorites) was refreshed; null if never. */
  refreshTime: Date | null;
  /** Usage included up to here: the answer's own time. */
  freshness: Date;
}

const tenantScope = (caller: CallerContext) => ({ service: "analytics" as const, tenantId: caller.tenantId, userId: caller.userId, signal: caller.signal });

/** Entity totals and per-version rows of `rows` as one entity's statistics (zero without usage). */
function statsOf(
  entityId: string,
  rows: readonly EntityUsageRow[],
  attrs: { entityType: string | null; title: string; versionCount: number; favoriteCount: bigint; refreshTime: Date | null; freshness: Date },
): EntityStats {
  const total = rows.find((r) => r.entityId === entityId && r.entityVersion === null);
  const versions = rows
    .filter((r) => r.entityId === entityId && r.entityVersion !== null)
    .map((r) => ({
      version: r.entityVersion!,
      viewCount: r.viewCount,
      renderCount: r.renderCount,
      executeCount: r.executeCount,
      llmCallCount: r.llmCallCount,
      figures: figuresOf(r),
      firstUse: r.firstAt,
      lastUse: r.lastAt,
    }))
    .sort((a, b) => a.version - b.version);
  return {
    entityId,
    ...attrs,
    viewCount: total?.viewCount ?? 0n,
    renderCount: total?.renderCount ?? 0n,
    executeCount: total?.executeCount ?? 0n,
    llmCallCount: total?.llmCallCount ?? 0n,
    figures: total ? figuresOf(total) : EMPTY_FIGURES,
    firstUse: total?.firstAt ?? null,
    lastUse: total?.lastAt ?? null,
    versions,
  };
}

/**
 * The statistics of one entity over all retained usage, in total and per version. Content checks
 * that the caller may view it (NOT_FOUND otherwise) and gives its type, title and version count.
 */
export async function getEntityStats(db: Knex, content: ContentDirectory, caller: CallerContext, entityId: string, now: Date = new Date()): Promise<EntityStats> {
  const entity = await content.getEntity(entityId);
  if (entity === null) throw new NotFoundError("entity not found", { metadata: { resource_type: "entity" } });
  const { rows, favorites, refreshTime } = await withTenant(db, tenantScope(caller), async (trx) => ({
    rows: await entityUsage(trx, caller.tenantId, [entityId], now),
    favorites: await favoriteCount(trx, caller.tenantId, entityId),
    refreshTime: await entityStatsRefreshTime(trx),
  }));
  return statsOf(entityId, rows, {
    entityType: entity.type,
    title: entity.title,
    versionCount: entity.currentVersion,
    favoriteCount: favorites,
    refreshTime,
    freshness: now,
  });
}

export interface ListEntityStatsRequest {
  order: EntityStatsOrder;
  types: readonly string[];
  pageSize: number;
  pageToken: string;
}

export interface EntityStatsPage {
  stats: EntityStats[];
  nextPageToken: string;
  refreshTime: Date | null;
  freshness: Date;
}

const CURSOR_KEY = /^-?\d{1,20}$/;

/**
 * A page of the tenant's entity statistics in `order` (descending). Any member. Titles come from
 * content with the caller's credentials: empty for entities the caller may not view, and for all
 * while content is unreachable (logged by the adapter; the list is still answered).
 */
export async function listEntityStats(
  db: Knex,
  content: ContentDirectory,
  caller: CallerContext,
  q: ListEntityStatsRequest,
  onContentUnavailable: (err: unknown) => void,
  now: Date = new Date(),
): Promise<EntityStatsPage> {
  const params = { t: caller.tenantId, o: q.order, ty: [...q.types].sort() };
  const limit = pageSizeOf(q.pageSize, 50);
  const c = decodePageCursor(q.pageToken, params, { k: CURSOR_KEY, id: CURSOR_UUID });
  const { listed, rows, refreshTime } = await withTenant(db, tenantScope(caller), async (trx) => {
    const listed = await listEntities(trx, caller.tenantId, { order: q.order, types: q.types, end: now, after: c ? { key: c.k, entityId: c.id } : null, limit: limit + 1 });
    const pageIds = listed.slice(0, limit).map((l) => l.entityId);
    return { listed, rows: await entityUsage(trx, caller.tenantId, pageIds, now), refreshTime: await entityStatsRefreshTime(trx) };
  });
  const { page, nextPageToken } = pageOf(listed, limit, params, (last) => ({ k: last.key, id: last.entityId }));
  let entities = new Map<string, EntityInfo>();
  if (page.length > 0) {
    try {
      entities = await content.getEntities(page.map((l) => l.entityId));
    } catch (err) {
      // Titles are a courtesy of content: the statistics stand without them.
      onContentUnavailable(err);
    }
  }
  return {
    stats: page.map((l) => {
      const e = entities.get(l.entityId);
      return statsOf(l.entityId, rows, {
        entityType: e?.type ?? l.entityType,
        title: e?.title ?? "",
        versionCount: e?.currentVersion ?? l.versionCount ?? 0,
        favoriteCount: l.favoriteCount,
        refreshTime,
        freshness: now,
      });
    }),
    nextPageToken,
    refreshTime,
    freshness: now,
  };
}

/** The contract's default window of CompareLabelMove: 7 days. */
export const DEFAULT_MOVE_WINDOW_MS = 7 * 86_400_000;
/** History entries read at most to find a move (pages of content's ListLabelHistory). */
const MAX_HISTORY_ENTRIES = 10_000;

export interface CompareLabelMoveRequest {
  entityId: string;
  label: string;
  /** Undefined: the label's last move. */
  moveTime: Date | undefined;
  windowMs: number;
  kinds: readonly string[];
}

/** One side of a move: its window, version and exact figures. */
export interface MoveSide {
  start: Date;
  end: Date;
  version: number;
  figures: WindowFigures;
  usesPerHour: number;
}

/** Relative changes (after − before) / before; undefined where before is zero or missing. */
export interface MoveChange {
  usesPerHour: number | undefined;
  p50Latency: number | undefined;
  p95Latency: number | undefined;
  meanCost: number | undefined;
  medianCost: number | undefined;
  meanTokensIn: number | undefined;
  meanTokensOut: number | undefined;
}

export interface LabelMoveComparison {
  entityId: string;
  label: string;
  moveTime: Date;
  fromVersion: number;
  toVersion: number;
  actorId: string;
  nextChangeTime: Date | null;
  before: MoveSide;
  after: MoveSide;
  change: MoveChange;
  freshness: Date;
}

/** (after − before) / before, or undefined when there is nothing to relate to. */
export function relativeChange(before: number | null, after: number | null): number | undefined {
  if (before === null || after === null || before === 0) return undefined;
  return (after - before) / before;
}

/**
 * The move of `label` to compare — its last move at or before `at` (or its last move) — and the
 * change after it, from content's history (newest first).
 */
export async function findMove(history: AsyncIterable<LabelChange>, at: Date | undefined): Promise<{ move: LabelChange; next: LabelChange | null } | null> {
  let newer: LabelChange | null = null;
  let read = 0;
  for await (const change of history) {
    if (change.type === "moved" && change.fromVersion !== null && change.toVersion !== null && (at === undefined || change.time <= at)) return { move: change, next: newer };
    newer = change;
    if (++read >= MAX_HISTORY_ENTRIES) break;
  }
  return null;
}

/**
 * The usage of an entity before and after a move of one of its labels (issue 11, point 3's
 * change-aware analytics): before = [move − window, move) for the version the label left, after =
 * [move, min(next change, move + window, now)) for the version it moved to; usage is attributed by
 * the label and version recorded on each event. Content's label history (with the caller's
 * credentials) gives the move and checks that the caller may view the entity.
 */
export async function compareLabelMove(
  db: Knex,
  content: ContentDirectory,
  caller: CallerContext,
  q: CompareLabelMoveRequest,
  now: Date = new Date(),
): Promise<LabelMoveComparison> {
  if (q.moveTime !== undefined && q.moveTime > now) throw new InvalidArgumentError({ field: "move_time", description: "must not be in the future" });
  const found = await findMove(content.labelHistory(q.entityId, q.label), q.moveTime);
  if (found === null) {
    throw new NotFoundError(`label ${q.label} of entity ${q.entityId} has no move${q.moveTime ? " at or before move_time" : ""}`, {
      metadata: { resource_type: "label_move" },
    });
  }
  const { move, next } = found;
  const moveAt = move.time;
  const afterEnd = new Date(Math.min(moveAt.getTime() + q.windowMs, next?.time.getTime() ?? Infinity, now.getTime()));
  const before = { start: new Date(moveAt.getTime() - q.windowMs), end: moveAt, version: move.fromVersion! };
  const after = { start: moveAt, end: afterEnd < moveAt ? moveAt : afterEnd, version: move.toVersion! };
  const [b, a] = await withTenant(db, tenantScope(caller), (trx) =>
    labelWindowFigures(trx, caller.tenantId, { entityId: q.entityId, label: q.label, kinds: q.kinds, windows: [before, after] }),
  );
  const side = (w: typeof before, f: WindowFigures): MoveSide => {
    const hours = (w.end.getTime() - w.start.getTime()) / 3_600_000;
    return { ...w, figures: f, usesPerHour: hours > 0 ? Number(f.eventCount) / hours : 0 };
  };
  const bs = side(before, b!);
  const as = side(after, a!);
  return {
    entityId: q.entityId,
    label: q.label,
    moveTime: moveAt,
    fromVersion: move.fromVersion!,
    toVersion: move.toVersion!,
    actorId: move.actorId,
    nextChangeTime: next?.time ?? null,
    before: bs,
    after: as,
    change: {
      usesPerHour: relativeChange(bs.usesPerHour, as.usesPerHour),
      p50Latency: relativeChange(bs.figures.p50LatencyMs, as.figures.p50LatencyMs),
      p95Latency: relativeChange(bs.figures.p95LatencyMs, as.figures.p95LatencyMs),
      meanCost: relativeChange(bs.figures.meanCostMicros, as.figures.meanCostMicros),
      medianCost: relativeChange(bs.figures.medianCostMicros, as.figures.medianCostMicros),
      meanTokensIn: relativeChange(bs.figures.meanTokensIn, as.figures.meanTokensIn),
      meanTokensOut: relativeChange(bs.figures.meanTokensOut, as.figures.meanTokensOut),
    },
    freshness: now,
  };
}
