// The baseline of the transport benchmark: a bare @grpc/grpc-js server with the canonical
// grpc.health.v1 implementation (the grpc-health-check package), nothing else. Prints its port.
import * as grpc from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";

const server = new grpc.Server();
new HealthImplementation({ "": "SERVING" }).addToServer(server);
server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  process.stdout.write(`PORTS ${port}\n`);
});
process.on("SIGTERM", () => server.forceShutdown());
