// The measured side of the analytics benchmarks (tail and ingest): the analytics service exactly as
// `main.ts` runs it (configuration from the environment: DATABASE_URL, IDENTITY_URL,
// AUDIT_TAIL_POLL_MS, SERVICE_TOKEN, DB_POOL_MAX), on free ports, in its own process so that the
// benchmark's writers, readers and producers do not share its event loop. Prints its ports.
import { analyticsService } from "@promptcraft/analytics";
import { loadConfig, startService } from "@promptcraft/platform";

const service = await startService(analyticsService, loadConfig(analyticsService.config, { ...process.env, GRPC_PORT: "0", CONNECT_PORT: "0" }));
process.stdout.write(`PORTS ${service.grpcPort} ${service.connectPort}\n`);
process.on("SIGTERM", () => void service.close().then(() => process.exit(0)));
