import { randomUUID } from "node:crypto";
import type { NewUsageEvent } from "./usage.js";

/**
 * A usage event for tests, to build on: a `render` now with a fresh id, no dimensions and no figures;
 * `overrides` set what a test needs (the store tests of ingest, rollups, entity statistics and quotas).
 */
export function usageEvent(overrides: Partial<NewUsageEvent> = {}): NewUsageEvent {
  return {
    id: randomUUID(),
    occurredAt: new Date(),
    kind: "render",
    userId: null,
    apiKeyId: null,
    entityId: null,
    entityVersion: null,
    label: null,
    model: null,
    tokensIn: 0,
    tokensOut: 0,
    costMicros: 0n,
    latencyMs: null,
    metadata: {},
    requestId: null,
    ...overrides,
  };
}
