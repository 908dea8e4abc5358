import { fileURLToPath } from "node:url";
import path from "node:path";

/** The five services with their default ports (brief §5): gRPC 5005x, Connect 5105x. */
export const SERVICES = [
  { name: "identity", grpcPort: 50051, connectPort: 51051 },
  { name: "content", grpcPort: 50052, connectPort: 51052 },
  { name: "graph", grpcPort: 50053, connectPort: 51053 },
  { name: "search", grpcPort: 50054, connectPort: 51054 },
  { name: "analytics", grpcPort: 50055, connectPort: 51055 },
] as const;

export type ServiceInfo = (typeof SERVICES)[number];

/** Root of the repository (this file is packages/cli/dist/services.js once built). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

/** The built entry point of a service, the same file containers run. */
export function serviceMain(name: string): string {
  return path.join(REPO_ROOT, "services", name, "dist", "src", "main.js");
}
