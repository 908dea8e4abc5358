export * from "./database.js";
export * from "./fixtures.js";
export * from "./grpc.js";
