import { callerOf, dbTimeFromTimestamp, timestampFromDb, type PeerClient, type ServiceDeps, type ServiceHandlers } from "@promptcraft/platform";
import type { AnalyticsService } from "@promptcraft/proto/promptcraft/analytics/v1/analytics_service_pb";
import type { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { EntityType } from "@promptcraft/proto/promptcraft/content/v1/resources_pb";
import type { AnalyticsConfig } from "../config.js";
import { getEntityCoUsage } from "../domain/co-usage.js";
import * as stats from "../domain/entity-stats.js";
import type { EntityStatsOrder } from "../store/entity-stats.js";
import { contentDirectory, ENTITY_TYPE_NAMES, ENTITY_TYPES } from "./content-directory.js";
import { durationOfMs, totalsToProto } from "./summaries.js";
import { KIND_NAMES } from "./usage.js";


/** The contract's `order_by` values (the proto rules admit only these). */
const ORDERS: Record<string, EntityStatsOrder> = {
  "": "render_count",
  "render_count desc": "render_count",
  "view_count desc": "view_count",
  "execute_count desc": "execute_count",
  "llm_call_count desc": "llm_call_count",
  "cost_micros desc": "cost_micros",
  "last_use_time desc": "last_use_time",
  "favorite_count desc": "favorite_count",
};

const timeOrUnset = (t: Date | null) => (t === null ? undefined : timestampFromDb(t));

function statsToProto(s: stats.EntityStats) {
  return {
    entityId: s.entityId,
    entityType: s.entityType === null ? EntityType.UNSPECIFIED : (ENTITY_TYPES[s.entityType] ?? EntityType.UNSPECIFIED),
    title: s.title,
    viewCount: s.viewCount,
    renderCount: s.renderCount,
    executeCount: s.executeCount,
    llmCallCount: s.llmCallCount,
    totals: totalsToProto(s.figures),
    favoriteCount: s.favoriteCount,
    versionCount: s.versionCount,
    lastUseTime: timeOrUnset(s.lastUse),
    refreshTime: timeOrUnset(s.refreshTime),
    versions: s.versions.map((v) => ({
      version: v.version,
      viewCount: v.viewCount,
      renderCount: v.renderCount,
      executeCount: v.executeCount,
      llmCallCount: v.llmCallCount,
      totals: totalsToProto(v.figures),
      firstUseTime: timeOrUnset(v.firstUse),
      lastUseTime: timeOrUnset(v.lastUse),
    })),
    firstUseTime: timeOrUnset(s.firstUse),
    dataFreshnessTime: timestampFromDb(s.freshness),
  };
}

const orUndefined = (v: number | null) => (v === null ? undefined : v);

function sideToProto(s: stats.MoveSide) {
  const f = s.figures;
  return {
    startTime: timestampFromDb(s.start),
    endTime: timestampFromDb(s.end),
    version: s.version,
    totals: {
      eventCount: f.eventCount,
      inputTokens: f.tokensIn,
      outputTokens: f.tokensOut,
      costMicros: f.costMicros,
      uniqueUsers: f.uniqueUsers,
      averageLatency: durationOfMs(orUndefined(f.meanLatencyMs)),
      p50Latency: durationOfMs(orUndefined(f.p50LatencyMs)),
      p95Latency: durationOfMs(orUndefined(f.p95LatencyMs)),
      p99Latency: durationOfMs(orUndefined(f.p99LatencyMs)),
    },
    usesPerHour: s.usesPerHour,
    meanCostMicros: f.meanCostMicros ?? 0,
    medianCostMicros: f.medianCostMicros ?? 0,
    meanInputTokens: f.meanTokensIn ?? 0,
    meanOutputTokens: f.meanTokensOut ?? 0,
  };
}

/** AnalyticsService entity statistics, co-usage and label-move comparison (rules in domain/entity-stats.ts, domain/co-usage.ts). */
export function entityStatsHandlers(deps: ServiceDeps<AnalyticsConfig>, content: PeerClient<typeof ContentService>): ServiceHandlers<typeof AnalyticsService> {
  const db = deps.db;
  return {
    getEntityStats: async (request, ctx) => statsToProto(await stats.getEntityStats(db, contentDirectory(content, ctx), callerOf(ctx), request.entityId.toLowerCase())),
    getEntityCoUsage: async (request, ctx) => {
      const c = await getEntityCoUsage(db, contentDirectory(content, ctx), callerOf(ctx), {
        entityId: request.entityId.toLowerCase(),
        days: request.days,
        maxEntities: request.maxEntities,
      });
      return {
        entityId: c.entityId,
        requestCount: BigInt(c.requestCount),
        windowStartTime: timestampFromDb(c.windowStart),
        entities: c.entities.map((e) => ({ entityId: e.entityId, sharedRequestCount: BigInt(e.sharedRequests), lastSharedUseTime: timestampFromDb(e.lastSharedAt) })),
      };
    },
    listEntityStats: async (request, ctx) => {
      const page = await stats.listEntityStats(
        db,
        contentDirectory(content, ctx),
        callerOf(ctx),
        {
          order: ORDERS[request.orderBy] ?? "render_count",
          types: request.types.map((t) => ENTITY_TYPE_NAMES.get(t) ?? ""),
          pageSize: request.pageSize,
          pageToken: request.pageToken,
        },
        (err) => ctx.log.warn({ err }, "entity titles unavailable: the content service did not answer"),
      );
      return {
        entityStats: page.stats.map(statsToProto),
        nextPageToken: page.nextPageToken,
        refreshTime: timeOrUnset(page.refreshTime),
        dataFreshnessTime: timestampFromDb(page.freshness),
      };
    },
    compareLabelMove: async (request, ctx) => {
      const c = await stats.compareLabelMove(db, contentDirectory(content, ctx), callerOf(ctx), {
        entityId: request.entityId.toLowerCase(),
        label: request.label,
        moveTime: request.moveTime ? dbTimeFromTimestamp(request.moveTime, "move_time") : undefined,
        // Bounded by the proto rules (1 minute to 31 days).
        windowMs: request.window ? Number(request.window.seconds) * 1000 + Math.floor(request.window.nanos / 1e6) : stats.DEFAULT_MOVE_WINDOW_MS,
        kinds: request.kinds.map((k) => KIND_NAMES[k]),
      });
      return {
        entityId: c.entityId,
        label: c.label,
        moveTime: timestampFromDb(c.moveTime),
        fromVersion: c.fromVersion,
        toVersion: c.toVersion,
        actorId: c.actorId,
        nextChangeTime: timeOrUnset(c.nextChangeTime),
        before: sideToProto(c.before),
        after: sideToProto(c.after),
        change: c.change,
        dataFreshnessTime: timestampFromDb(c.freshness),
      };
    },
  };
}
