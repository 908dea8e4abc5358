import type { FieldViolation } from "@promptcraft/platform";
import { UsageKind, type UsageEvent } from "@promptcraft/proto/promptcraft/analytics/v1/resources_pb";

/**
 * The proto rules of a usage batch (`events` of StreamUsageEventsRequest / IngestUsageEventsRequest
 * and every UsageEvent), written out by hand: interpreting them with protovalidate costs ~0.1 ms
 * per event plus the O(n²)-ish CEL `unique()` of the ids, i.e. more than storing the event, and
 * ingest is the hot path. Same field paths and rule ids as protovalidate (usage-validation.test.ts
 * holds it to protovalidate's verdicts); a rule added to the proto must be added here.
 */
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const LABEL = /^[a-z0-9_.-]{1,36}$/;
const KINDS: ReadonlySet<number> = new Set(Object.values(UsageKind).filter((v): v is number => typeof v === "number" && v !== UsageKind.UNSPECIFIED));
const MAX_EVENTS = 1000;

/** Length in code points, as the proto rules count `max_len`. */
function codePoints(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdbff) n++;
  }
  return n;
}

/** Violations of a usage batch request (empty when valid). */
export function usageBatchViolations(request: { events: UsageEvent[] }): FieldViolation[] {
  const out: FieldViolation[] = [];
  const events = request.events;
  if (events.length < 1) out.push({ field: "events", description: "value must contain at least 1 item(s)", reason: "repeated.min_items" });
  if (events.length > MAX_EVENTS) out.push({ field: "events", description: `value must contain no more than ${MAX_EVENTS} item(s)`, reason: "repeated.max_items" });
  for (const [i, e] of events.entries()) eventViolations(e, `events[${i}]`, out);
  if (new Set(events.map((e) => e.id)).size !== events.length) {
    out.push({ field: "events", description: "event ids must be unique within a message", reason: "events.unique_ids" });
  }
  return out;
}

function eventViolations(e: UsageEvent, at: string, out: FieldViolation[]): void {
  const uuid = (value: string, field: string, optional: boolean) => {
    if (optional && value === "") return;
    if (value === "") out.push({ field: `${at}.${field}`, description: "value is empty, which is not a valid UUID", reason: "string.uuid_empty" });
    else if (!UUID.test(value)) out.push({ field: `${at}.${field}`, description: "value must be a valid UUID", reason: "string.uuid" });
  };
  uuid(e.id, "id", false);
  uuid(e.userId, "user_id", true);
  uuid(e.entityId, "entity_id", true);
  if (e.entityVersion !== undefined && e.entityVersion <= 0) out.push({ field: `${at}.entity_version`, description: "value must be greater than 0", reason: "int32.gt" });
  if (e.label !== "" && !LABEL.test(e.label)) out.push({ field: `${at}.label`, description: `value does not match regex pattern \`${LABEL.source}\``, reason: "string.pattern" });
  if (!KINDS.has(e.kind)) {
    out.push(
      e.kind === UsageKind.UNSPECIFIED
        ? { field: `${at}.kind`, description: "value must not be in list [0]", reason: "enum.not_in" }
        : { field: `${at}.kind`, description: "value must be one of the defined enum values", reason: "enum.defined_only" },
    );
  }
  if (e.model.length > 200 && codePoints(e.model) > 200) out.push({ field: `${at}.model`, description: "value length must be at most 200 characters", reason: "string.max_len" });
  if (e.inputTokens < 0) out.push({ field: `${at}.input_tokens`, description: "value must be greater than or equal to 0", reason: "int32.gte" });
  if (e.outputTokens < 0) out.push({ field: `${at}.output_tokens`, description: "value must be greater than or equal to 0", reason: "int32.gte" });
  if (e.costMicros < 0n) out.push({ field: `${at}.cost_micros`, description: "value must be greater than or equal to 0", reason: "int64.gte" });
  if (e.latency) {
    const { seconds, nanos } = e.latency;
    if (seconds < 0n || (seconds === 0n && nanos < 0) || seconds > 3600n || (seconds === 3600n && nanos > 0)) {
      out.push({ field: `${at}.latency`, description: "value must be greater than or equal to 0s and less than or equal to 3600s", reason: "duration.gte_lte" });
    }
  }
  if (!e.occurTime) out.push({ field: `${at}.occur_time`, description: "value is required", reason: "required" });
  if (e.requestId.length > 128 && codePoints(e.requestId) > 128) out.push({ field: `${at}.request_id`, description: "value length must be at most 128 characters", reason: "string.max_len" });
}
