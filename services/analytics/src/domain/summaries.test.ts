import { describe, test } from "vitest";
import assert from "node:assert/strict";
import { LATENCY_BOUNDS_MS, histogramQuantile, slotEnd, slotStart } from "./summaries.js";

describe("domain/summaries", () => {
  test("histogramQuantile interpolates inside the bucket that holds the rank", () => {
    const hist = new Array<bigint>(LATENCY_BOUNDS_MS.length + 1).fill(0n);
    // 100 events in [100, 150) ms.
    hist[LATENCY_BOUNDS_MS.indexOf(100) + 1] = 100n;
    assert.equal(histogramQuantile(hist, 0.5), 125);
    assert.equal(histogramQuantile(hist, 1), 150);
    // One slow event in [1000, 1500): p99 stays in the fast bucket, the max in the slow one.
    hist[LATENCY_BOUNDS_MS.indexOf(1000) + 1] = 1n;
    assert.ok(histogramQuantile(hist, 0.99)! < 150);
    assert.equal(histogramQuantile(hist, 1), 1500);
    assert.equal(histogramQuantile(null, 0.5), undefined);
    assert.equal(histogramQuantile([0n, 0n], 0.5), undefined);
  });

  test("slots are UTC hours, days and calendar months", () => {
    const t = new Date("2026-02-28T13:45:10Z");
    assert.equal(slotStart(t, "hour").toISOString(), "2026-02-28T13:00:00.000Z");
    assert.equal(slotStart(t, "day").toISOString(), "2026-02-28T00:00:00.000Z");
    assert.equal(slotStart(t, "month").toISOString(), "2026-02-01T00:00:00.000Z");
    assert.equal(slotEnd(slotStart(t, "month"), "month").toISOString(), "2026-03-01T00:00:00.000Z");
  });
});
