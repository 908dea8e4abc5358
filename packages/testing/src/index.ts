export * from "./database.js";
export * from "./fixtures.js";
export * from "./grpc.js";
export * from "./tcp-proxy.js";
export * from "./fake-embeddings-server.js";
