// The measured side of the transport benchmark: the platform's server (the same code every service
// runs: pipeline, metrics, validation, logging at the default level), serving health. Prints its port.
import { createLogger, startServer } from "@promptcraft/platform";

const server = await startServer({
  name: "bench",
  host: "127.0.0.1",
  grpcPort: 0,
  connectPort: 0,
  services: [],
  log: createLogger("bench", process.env.LOG_LEVEL ?? "info"),
});
process.stdout.write(`PORTS ${server.grpcPort} ${server.connectPort}\n`);
process.on("SIGTERM", () => void server.close().then(() => process.exit(0)));
