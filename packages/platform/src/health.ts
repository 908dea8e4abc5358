import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { EventEmitter, on } from "node:events";
import {
  Health,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
  type HealthCheckResponse,
} from "@promptcraft/proto/grpc/health/v1/health_pb";
import { serve, type ServiceRegistration } from "./handlers.js";

export { ServingStatus };

/**
 * Serving status of a server and each of its services (`grpc.health.v1`). The empty name is the
 * server as a whole, which probes (Kubernetes `grpc:` probes, grpc_health_probe) ask for.
 */
export class HealthState {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly changes = new EventEmitter();

  constructor() {
    // Every Watch stream listens here; the default cap of 10 would warn under normal use.
    this.changes.setMaxListeners(0);
  }

  /** Sets the status of `service` ("" for the whole server) and notifies watchers. */
  set(service: string, status: ServingStatus): void {
    if (this.statuses.get(service) === status) return;
    this.statuses.set(service, status);
    this.changes.emit("change", service);
  }

  /** Sets every known service, and the server, to `status` (e.g. NOT_SERVING on shutdown). */
  setAll(status: ServingStatus): void {
    for (const service of [...this.statuses.keys()]) this.set(service, status);
  }

  get(service: string): ServingStatus | undefined {
    return this.statuses.get(service);
  }

  /** The `grpc.health.v1.Health` service over this state. Public: probes carry no credentials. */
  registration(): ServiceRegistration {
    return serve(
      Health,
      {
        check: async (request) => {
          const status = this.get(request.service);
          if (status === undefined) throw new ConnectError(`unknown service ${request.service}`, Code.NotFound);
          return { status };
        },
        watch: (request, ctx) => this.watch(request.service, ctx.signal),
        list: async () => {
          const statuses: Record<string, HealthCheckResponse> = {};
          for (const [service, status] of this.statuses) statuses[service] = create(HealthCheckResponseSchema, { status });
          return { statuses };
        },
      },
      { public: true, untraced: true },
    );
  }

  private async *watch(service: string, signal: AbortSignal): AsyncGenerator<{ status: ServingStatus }> {
    let last = this.get(service) ?? ServingStatus.SERVICE_UNKNOWN;
    yield { status: last };
    try {
      for await (const [changed] of on(this.changes, "change", { signal }) as AsyncIterable<[string]>) {
        if (changed !== service) continue;
        const next = this.get(service) ?? ServingStatus.SERVICE_UNKNOWN;
        if (next !== last) yield { status: (last = next) };
      }
    } catch (err) {
      // The client went away or the call ended: a normal end of a watch.
      if ((err as Error).name !== "AbortError") throw err;
    }
  }
}
