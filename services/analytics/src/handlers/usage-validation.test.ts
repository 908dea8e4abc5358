import { describe, test } from "vitest";
import assert from "node:assert/strict";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { createValidator } from "@bufbuild/protovalidate";
import { pathToString } from "@bufbuild/protobuf/reflect";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { IngestUsageEventsRequestSchema, StreamUsageEventsRequestSchema } from "@promptcraft/proto/promptcraft/analytics/v1/analytics_service_pb";
import { UsageKind, type UsageEventSchema } from "@promptcraft/proto/promptcraft/analytics/v1/resources_pb";
import { usageBatchViolations } from "./usage-validation.js";

const validator = createValidator();
const ID = "0191d3c4-7a1e-7cc0-9d6e-1c2b3a4d5e6f";

function event(overrides: Omit<MessageInitShape<typeof UsageEventSchema>, "$typeName"> = {}): MessageInitShape<typeof UsageEventSchema> {
  return { id: crypto.randomUUID(), kind: UsageKind.RENDER, occurTime: timestampFromDate(new Date()), ...overrides };
}

/** One batch per rule of the proto, valid and invalid on each side of every bound. */
const CASES: MessageInitShape<typeof UsageEventSchema>[][] = [
  [event()],
  [],
  Array.from({ length: 1000 }, () => event()),
  Array.from({ length: 1001 }, () => event()),
  [event({ id: ID }), event({ id: ID })],
  [event({ id: "" })],
  [event({ id: "not-a-uuid" })],
  [event({ id: ID.toUpperCase(), userId: "x", entityId: "y" })],
  [event({ userId: crypto.randomUUID(), entityId: crypto.randomUUID(), entityVersion: 1, label: "production", model: "m".repeat(200), requestId: "r".repeat(128) })],
  [event({ entityVersion: 0 }), event({ entityVersion: -3 })],
  [event({ label: "Production" }), event({ label: "a".repeat(37) }), event({ label: "v1.2-b_c" })],
  [event({ kind: UsageKind.UNSPECIFIED }), event({ kind: 99 as UsageKind }), event({ kind: UsageKind.EMBEDDING })],
  [event({ model: "m".repeat(201) }), event({ model: "é".repeat(200) }), event({ model: "😀".repeat(200) }), event({ model: "😀".repeat(201) })],
  [event({ inputTokens: -1, outputTokens: -1, costMicros: -1n })],
  [event({ latency: { seconds: 3600n, nanos: 0 } }), event({ latency: { seconds: 3600n, nanos: 1 } }), event({ latency: { seconds: -1n, nanos: 0 } }), event({ latency: { seconds: 0n, nanos: -5 } })],
  [event({ occurTime: undefined })],
  [event({ requestId: "r".repeat(129) })],
];

const summary = (list: { field: string; reason?: string }[]) => list.map((v) => `${v.field} ${v.reason ?? ""}`).sort();

describe("usageBatchViolations", () => {
  test("gives protovalidate's verdicts, field paths and rule ids on every rule of a usage batch", () => {
    for (const schema of [StreamUsageEventsRequestSchema, IngestUsageEventsRequestSchema]) {
      for (const [n, events] of CASES.entries()) {
        const message = create(schema, { events });
        const result = validator.validate(schema, message);
        assert.notEqual(result.kind, "error");
        const expected = result.kind === "invalid" ? result.violations.map((v) => ({ field: pathToString(v.field), reason: v.ruleId })) : [];
        assert.deepEqual(summary(usageBatchViolations(message)), summary(expected), `case ${n}`);
      }
    }
  });
});
