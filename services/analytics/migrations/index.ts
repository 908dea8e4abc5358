import type { Migration } from "@promptcraft/db";
import { createUsageEvent } from "./20261125095000_create_usage_event.js";
import { createReadModels } from "./20261125095100_create_read_models.js";
import { usageEventIds } from "./20261206220000_usage_event_ids.js";
import { createPartitionMaintenanceRun } from "./20261206230000_create_partition_maintenance_run.js";
import { readModelRefreshErrors } from "./20261206230100_read_model_refresh_errors.js";
import { pruneUsageEventIds } from "./20261206230200_prune_usage_event_ids.js";
import { usageRollups } from "./20261206231000_usage_rollups.js";
import { usageRollupDaily } from "./20261207030000_usage_rollup_daily.js";
import { pgPartman } from "./20261207030100_pg_partman.js";
import { tenantUsageSummaryBigint } from "./20261207080000_tenant_usage_summary_bigint.js";
import { usageRollupDatabaseHorizon } from "./20261207080100_usage_rollup_database_horizon.js";
import { eventLogExpiry } from "./20261207080200_event_log_expiry.js";
import { usageEventRequestIdx } from "./20261207180100_usage_event_request_idx.js";

/** The analytics service's slice of the schema, tracked in `analytics_migrations`. See docs/schema.md. */
export const migrations: readonly Migration[] = [createUsageEvent, createReadModels, usageEventIds, createPartitionMaintenanceRun, readModelRefreshErrors, pruneUsageEventIds, usageRollups, usageRollupDaily, pgPartman, tenantUsageSummaryBigint, usageRollupDatabaseHorizon, eventLogExpiry, usageEventRequestIdx];
