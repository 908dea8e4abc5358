// The measured side of the graph benchmark: the graph service exactly as `main.ts` runs it
// (configuration from the environment: DATABASE_URL, IDENTITY_URL, DB_POOL_MAX), on free ports, in its
// own process so that the benchmark's client does not share its event loop. Prints its ports.
import { graphService } from "@promptcraft/graph";
import { loadConfig, startService } from "@promptcraft/platform";

const service = await startService(graphService, loadConfig(graphService.config, { ...process.env, GRPC_PORT: "0", CONNECT_PORT: "0" }));
process.stdout.write(`PORTS ${service.grpcPort} ${service.connectPort}\n`);
process.on("SIGTERM", () => void service.close().then(() => process.exit(0)));
