import client from "prom-client";

/**
 * Prometheus metrics of one server, in the conventional grpc-prometheus shape so that existing
 * dashboards work: `grpc_server_handled_total{grpc_service,grpc_method,grpc_type,grpc_code}` and
 * `grpc_server_handling_seconds`. Label children are cached: label lookup is the costly part of a
 * prom-client observation, and it sits on every call's path.
 */
export class RpcMetrics {
  readonly registry = new client.Registry();
  private readonly handled = new client.Counter({
    name: "grpc_server_handled_total",
    help: "RPCs completed on the server, by code.",
    labelNames: ["grpc_service", "grpc_method", "grpc_type", "grpc_code", "protocol"] as const,
    registers: [this.registry],
  });
  private readonly seconds = new client.Histogram({
    name: "grpc_server_handling_seconds",
    help: "Time from the start of an RPC to its status, in seconds.",
    labelNames: ["grpc_service", "grpc_method", "grpc_type"] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  private readonly counterChildren = new Map<string, client.Counter.Internal>();
  private readonly histogramChildren = new Map<string, client.Histogram.Internal<string>>();

  constructor(serviceName: string) {
    this.registry.setDefaultLabels({ app: serviceName });
    client.collectDefaultMetrics({ register: this.registry });
  }

  /** Records one finished call. */
  observe(service: string, method: string, type: string, code: string, protocol: string, seconds: number): void {
    const key = `${service}/${method}`;
    let hist = this.histogramChildren.get(key);
    if (!hist) {
      hist = this.seconds.labels(service, method, type);
      this.histogramChildren.set(key, hist);
    }
    hist.observe(seconds);
    const ckey = `${key}:${code}:${protocol}`;
    let counter = this.counterChildren.get(ckey);
    if (!counter) {
      counter = this.handled.labels(service, method, type, code, protocol);
      this.counterChildren.set(ckey, counter);
    }
    counter.inc();
  }
}
