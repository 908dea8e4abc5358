import client from "prom-client";

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Tallies of one method, updated on every call with plain arithmetic only. */
interface MethodTally {
  labels: { grpc_service: string; grpc_method: string; grpc_type: string };
  /** Per-bucket counts (not cumulative) plus one overflow slot for +Inf. */
  buckets: Float64Array;
  sum: number;
  count: number;
  /** Completed calls by `code|protocol`. */
  handled: Map<string, number>;
}

/**
 * Prometheus metrics of one server, in the conventional grpc-prometheus shape so that existing
 * dashboards work: `grpc_server_handled_total{grpc_service,grpc_method,grpc_type,grpc_code}` and
 * the `grpc_server_handling_seconds` histogram. Calls only bump numbers in a per-method tally;
 * prom-client reads the tallies when scraped. (Observing through prom-client on every call cost
 * a measurable share of a trivial RPC: label hashing and bucket search per observation.)
 */
export class RpcMetrics {
  readonly registry = new client.Registry();
  private readonly tallies = new Map<string, MethodTally>();

  constructor(serviceName: string) {
    this.registry.setDefaultLabels({ app: serviceName });
    client.collectDefaultMetrics({ register: this.registry });
    const tallies = this.tallies;
    new client.Counter({
      name: "grpc_server_handled_total",
      help: "RPCs completed on the server, by code and protocol.",
      labelNames: ["grpc_service", "grpc_method", "grpc_type", "grpc_code", "protocol"] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const tally of tallies.values()) {
          for (const [key, n] of tally.handled) {
            const [grpc_code = "", protocol = ""] = key.split("|");
            this.inc({ ...tally.labels, grpc_code, protocol }, n);
          }
        }
      },
    });
    // prom-client histograms take observations one at a time; this one is read from the tallies.
    const histogram = {
      name: "grpc_server_handling_seconds",
      help: "Time from the start of an RPC to its status, in seconds.",
      type: "histogram",
      aggregator: "sum",
      reset: () => {},
      get: async () => {
        type Labels = Record<string, string | number>;
        const values: { labels: Labels; value: number; metricName: string }[] = [];
        for (const tally of tallies.values()) {
          let cumulative = 0;
          BUCKETS.forEach((le, i) => {
            cumulative += tally.buckets[i] ?? 0;
            values.push({ labels: { ...tally.labels, le }, value: cumulative, metricName: `${histogram.name}_bucket` });
          });
          values.push({ labels: { ...tally.labels, le: "+Inf" }, value: tally.count, metricName: `${histogram.name}_bucket` });
          values.push({ labels: tally.labels, value: tally.sum, metricName: `${histogram.name}_sum` });
          values.push({ labels: tally.labels, value: tally.count, metricName: `${histogram.name}_count` });
        }
        return { name: histogram.name, help: histogram.help, type: histogram.type, aggregator: histogram.aggregator, values };
      },
    };
    this.registry.registerMetric(histogram as unknown as client.Metric);
  }

  /** Records one finished call. */
  observe(service: string, method: string, type: string, code: string, protocol: string, seconds: number): void {
    const key = `${service}/${method}`;
    let tally = this.tallies.get(key);
    if (!tally) {
      tally = {
        labels: { grpc_service: service, grpc_method: method, grpc_type: type },
        buckets: new Float64Array(BUCKETS.length + 1),
        sum: 0,
        count: 0,
        handled: new Map(),
      };
      this.tallies.set(key, tally);
    }
    let bucket = 0;
    while (bucket < BUCKETS.length && seconds > (BUCKETS[bucket] ?? Infinity)) bucket++;
    tally.buckets[bucket] = (tally.buckets[bucket] ?? 0) + 1;
    tally.sum += seconds;
    tally.count++;
    const handledKey = `${code}|${protocol}`;
    tally.handled.set(handledKey, (tally.handled.get(handledKey) ?? 0) + 1);
  }
}
