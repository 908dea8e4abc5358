import { describe, test } from "vitest";
import assert from "node:assert/strict";
import { findMove, relativeChange, type LabelChange } from "./entity-stats.js";

const change = (type: LabelChange["type"], from: number | null, to: number | null, iso: string): LabelChange => ({
  type,
  fromVersion: from,
  toVersion: to,
  actorId: "u",
  time: new Date(iso),
});

async function* newestFirst(changes: LabelChange[]): AsyncIterable<LabelChange> {
  for (const c of changes) yield c;
}

// A label set to 6, moved to 7, moved to 8, removed (newest first, as content lists it).
const history = [
  change("removed", 8, null, "2026-12-05T00:00:00Z"),
  change("moved", 7, 8, "2026-12-04T00:00:00Z"),
  change("moved", 6, 7, "2026-12-02T00:00:00Z"),
  change("set", null, 6, "2026-12-01T00:00:00Z"),
];

describe("domain/entity-stats", () => {
  test("findMove: the last move (at or before a time) and the change after it", async () => {
    const last = await findMove(newestFirst(history), undefined);
    assert.deepEqual([last?.move.fromVersion, last?.move.toVersion, last?.next?.type], [7, 8, "removed"]);
    const earlier = await findMove(newestFirst(history), new Date("2026-12-03T00:00:00Z"));
    assert.deepEqual([earlier?.move.toVersion, earlier?.next?.time.toISOString()], [7, "2026-12-04T00:00:00.000Z"]);
    // A first set is no move: nothing to compare before it.
    assert.equal(await findMove(newestFirst(history), new Date("2026-12-01T12:00:00Z")), null);
    assert.equal(await findMove(newestFirst([]), undefined), null);
  });

  test("relativeChange: (after − before) / before, none from nothing", () => {
    assert.equal(relativeChange(2000, 2360), 0.18);
    assert.equal(relativeChange(100, 50), -0.5);
    assert.equal(relativeChange(0, 5), undefined);
    assert.equal(relativeChange(null, 5), undefined);
    assert.equal(relativeChange(5, null), undefined);
  });
});
