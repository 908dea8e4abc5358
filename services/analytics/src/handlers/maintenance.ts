import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { requirePlatformAdmin, timestampFromDb, type ServiceDeps, type ServiceHandlers } from "@promptcraft/platform";
import type { AnalyticsService } from "@promptcraft/proto/promptcraft/analytics/v1/analytics_service_pb";
import { PartitionMaintenanceEngine, ReadModelState, RetentionAction } from "@promptcraft/proto/promptcraft/analytics/v1/resources_pb";
import type { AnalyticsConfig } from "../config.js";
import * as partitions from "../domain/partitions.js";
import * as readModels from "../domain/read-models.js";

const DAY_MS = 86_400_000;
/** The contract's nominal month (31 days). */
const MONTH_MS = 31 * DAY_MS;

const RETENTION_ACTIONS = { drop: RetentionAction.DROP, detach: RetentionAction.DETACH, keep: RetentionAction.KEEP } as const;
const ENGINES = { built_in: PartitionMaintenanceEngine.BUILT_IN, pg_partman: PartitionMaintenanceEngine.PG_PARTMAN } as const;

/** pg_partman when it maintains any table (each table says its own), else the built-in maintainer. */
function engineOf(tables: partitions.PartitionedTableStatus[]) {
  const partman = tables.find((t) => t.engine === "pg_partman");
  return { engine: ENGINES[partman ? "pg_partman" : "built_in"], pgPartmanVersion: partman?.engineVersion ?? "" };
}

function tableToProto(t: partitions.PartitionedTableStatus) {
  return {
    table: t.table,
    engine: ENGINES[t.engine],
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

const READ_MODEL_STATES = {
  fresh: ReadModelState.FRESH,
  refreshing: ReadModelState.REFRESHING,
  failed: ReadModelState.FAILED,
  never_refreshed: ReadModelState.NEVER_REFRESHED,
} as const;

function readModelToProto(m: readModels.ReadModelInfo) {
  return {
    name: m.name,
    state: READ_MODEL_STATES[m.state],
    lastRefreshTime: m.lastRefreshedAt ? timestampFromDb(m.lastRefreshedAt) : undefined,
    lastRefreshDuration: m.lastDurationMs === null ? undefined : durationFromMs(Math.round(m.lastDurationMs)),
    staleness: m.stalenessMs === null ? undefined : durationFromMs(m.stalenessMs),
    refreshInterval: durationFromMs(m.refreshIntervalMs),
    nextRefreshTime: m.nextRefreshAt ? timestampFromDb(m.nextRefreshAt) : undefined,
    lastError: m.lastError,
    rowCount: BigInt(m.rowCount),
  };
}

/**
 * AnalyticsService read models and partition maintenance: GetPartitionMaintenanceStatus, RunPartitionMaintenance.
 * ListReadModels, RefreshReadModel. Platform-admin methods (public in `serve()`, checked here):
 * they span all tenants. An unknown read-model name is INVALID_ARGUMENT (the contract's validation).
 */
export function maintenanceHandlers(deps: ServiceDeps<AnalyticsConfig>): ServiceHandlers<typeof AnalyticsService> {
  const intervalMs = deps.config.PARTITION_MAINTENANCE_INTERVAL_S * 1000;
  const refreshIntervalMs = deps.config.READ_MODEL_REFRESH_INTERVAL_S * 1000;
  return {
    listReadModels: async (_request, ctx) => {
      requirePlatformAdmin(ctx, deps.config.PLATFORM_ADMIN_TOKEN);
      return { readModels: (await readModels.listReadModels(deps.db, new Date(), refreshIntervalMs)).map(readModelToProto) };
    },
    refreshReadModel: async (request, ctx) => {
      requirePlatformAdmin(ctx, deps.config.PLATFORM_ADMIN_TOKEN);
      const [model] = await readModels.refreshReadModels(deps.db, request.name as readModels.ReadModelName, refreshIntervalMs);
      return readModelToProto(model!);
    },
    getPartitionMaintenanceStatus: async (_request, ctx) => {
      requirePlatformAdmin(ctx, deps.config.PLATFORM_ADMIN_TOKEN);
      const tables = await partitions.partitionStatus(deps.db, new Date(), intervalMs);
      const { engine, pgPartmanVersion } = engineOf(tables);
      return { tables: tables.map(tableToProto), pgPartmanEnabled: engine === PartitionMaintenanceEngine.PG_PARTMAN, engine, pgPartmanVersion };
    },
    runPartitionMaintenance: async (request, ctx) => {
      requirePlatformAdmin(ctx, deps.config.PLATFORM_ADMIN_TOKEN);
      const result = await partitions.runPartitionMaintenance(deps.db, { dryRun: request.dryRun, now: new Date(), intervalMs });
      return {
        createdPartitions: result.created,
        droppedPartitions: result.dropped,
        detachedPartitions: result.detached,
        tables: result.tables.map(tableToProto),
        engine: engineOf(result.tables).engine,
      };
    },
  };
}
