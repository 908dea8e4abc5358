// The measured side of the search benchmark: the search service exactly as `main.ts` runs it
// (configuration from the environment: DATABASE_URL, IDENTITY_URL, EMBEDDING_*, SEARCH_*), on free
// ports, in its own process so that the benchmark's client does not share its event loop. Prints its ports.
import { loadConfig, startService } from "@promptcraft/platform";
import { searchService } from "@promptcraft/search";

const service = await startService(searchService, loadConfig(searchService.config, { ...process.env, GRPC_PORT: "0", CONNECT_PORT: "0" }));
process.stdout.write(`PORTS ${service.grpcPort} ${service.connectPort}\n`);
process.on("SIGTERM", () => void service.close().then(() => process.exit(0)));
