import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { requirePlatformAdmin, timestampFromDb, type ServiceDeps, type ServiceHandlers } from "@promptcraft/platform";
import type { AnalyticsService } from "@promptcraft/proto/promptcraft/analytics/v1/analytics_service_pb";
import { RetentionAction } from "@promptcraft/proto/promptcraft/analytics/v1/resources_pb";
import type { AnalyticsConfig } from "../config.js";
import * as partitions from "../domain/partitions.js";

const DAY_MS = 86_400_000;
/** The contract's nominal month (31 days). */
const MONTH_MS = 31 * DAY_MS;

const RETENTION_ACTIONS = { drop: RetentionAction.DROP, detach: RetentionAction.DETACH, keep: RetentionAction.KEEP } as const;

function tableToProto(t: partitions.PartitionedTableStatus) {
  return {
    table: t.table,
    partitionInterval: durationFromMs(t.granularity === "day" ? DAY_MS : MONTH_MS),
    premakeCount: t.premake,
    futurePartitionCount: t.futureCount,
    retention: t.retentionDays === null ? undefined : durationFromMs(Math.round(t.retentionDays * DAY_MS)),
    retentionAction: RETENTION_ACTIONS[t.retentionAction],
    partitions: t.partitions.map((p) => ({
      name: p.name,
      rangeStartTime: timestampFromDb(p.start),
      rangeEndTime: timestampFromDb(p.end),
      attached: p.attached,
      rowEstimate: BigInt(Math.round(p.rowEstimate)),
      sizeBytes: BigInt(Math.round(p.sizeBytes)),
    })),
    // No default partition exists: a row outside the partitions is refused, never parked.
    defaultPartitionRows: 0n,
    lastMaintenanceTime: t.lastMaintenanceAt ? timestampFromDb(t.lastMaintenanceAt) : undefined,
    nextMaintenanceTime: t.nextMaintenanceAt ? timestampFromDb(t.nextMaintenanceAt) : undefined,
    lastError: t.lastError,
  };
}

/**
 * AnalyticsService partition maintenance: GetPartitionMaintenanceStatus, RunPartitionMaintenance.
 * Platform-admin methods (public in `serve()`, checked here): they span all tenants.
 */
export function maintenanceHandlers(deps: ServiceDeps<AnalyticsConfig>): ServiceHandlers<typeof AnalyticsService> {
  const intervalMs = deps.config.PARTITION_MAINTENANCE_INTERVAL_S * 1000;
  return {
    getPartitionMaintenanceStatus: async (_request, ctx) => {
      requirePlatformAdmin(ctx, deps.config.PLATFORM_ADMIN_TOKEN);
      const tables = await partitions.partitionStatus(deps.db, new Date(), intervalMs);
      // The built-in maintainer runs everywhere today (pg_partman is not used yet).
      return { tables: tables.map(tableToProto), pgPartmanEnabled: false };
    },
    runPartitionMaintenance: async (request, ctx) => {
      requirePlatformAdmin(ctx, deps.config.PLATFORM_ADMIN_TOKEN);
      const result = await partitions.runPartitionMaintenance(deps.db, { dryRun: request.dryRun, now: new Date(), intervalMs });
      return {
        createdPartitions: result.created,
        droppedPartitions: result.dropped,
        detachedPartitions: result.detached,
        tables: result.tables.map(tableToProto),
      };
    },
  };
}
