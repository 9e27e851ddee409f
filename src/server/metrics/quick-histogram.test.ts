import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Histogram, Registry } from "prom-client";
import { QuickHistogram } from "./quick-histogram.ts";

const BUCKETS = [0.001, 0.01, 0.1, 1];

/** The same observations through prom-client's Histogram and a QuickHistogram. */
function both(observations: Array<[Record<"method" | "state", string>, number]>) {
  const theirs = new Registry();
  const ours = new Registry();
  const config = {
    name: "colony_test_seconds",
    help: "A test histogram",
    labelNames: ["method", "state"] as const,
    buckets: BUCKETS,
  };
  const reference = new Histogram({ ...config, registers: [theirs] });
  const quick = new QuickHistogram(config, ours);
  for (const [labels, value] of observations) {
    reference.observe(labels, value);
    quick.observe(labels, value);
  }
  return { theirs, ours, quick };
}

void describe("QuickHistogram", () => {
  void it("writes the same /metrics text and JSON as prom-client's histogram", async () => {
    const shell = { method: "SHELL", state: "COMPLETED" };
    const odd = { method: 'HT"TP\\', state: "FAIL\nED" }; // escaped by the registry
    const { theirs, ours } = both([
      [shell, 0.0005],
      [shell, 0.001], // on a bound: counted in that bucket
      [shell, 0.05],
      [odd, 2], // past every bound: +Inf only
      [shell, 0],
      [odd, 0.01],
    ]);
    const text = await ours.metrics();
    assert.equal(text, await theirs.metrics());
    assert.match(
      text,
      /colony_test_seconds_bucket\{le="0.001",method="SHELL",state="COMPLETED"\} 3/,
    );
    assert.match(text, /colony_test_seconds_count\{method="SHELL",state="COMPLETED"\} 4/);
    // The JSON too, but for prom-client's `exemplar` (null: exemplars are off).
    const json = (metrics: unknown) =>
      JSON.stringify(metrics, (key, value: unknown) => (key === "exemplar" ? undefined : value));
    assert.equal(json(await ours.getMetricsAsJSON()), json(await theirs.getMetricsAsJSON()));
  });

  void it("keeps one observer per label set, ignores values that are not numbers, and resets", async () => {
    const { ours, quick } = both([]);
    const a = quick.observer({ method: "SHELL", state: "COMPLETED" });
    assert.equal(quick.observer({ state: "COMPLETED", method: "SHELL" }), a);
    assert.notEqual(quick.observer({ method: "SHELL", state: "FAILED" }), a);
    a(Number.NaN);
    a(Number.POSITIVE_INFINITY);
    a(0.5);
    assert.match(
      await ours.metrics(),
      /colony_test_seconds_count\{method="SHELL",state="COMPLETED"\} 1\n/,
    );
    ours.resetMetrics();
    assert.doesNotMatch(await ours.metrics(), /_count/);
  });
});
