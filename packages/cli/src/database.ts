import { createKnex, migrateUp, startEmbeddedPostgres, type EmbeddedPostgres } from "@promptcraft/db";
import path from "node:path";
import { SCHEMA_SLICES } from "./schema.js";
import { REPO_ROOT } from "./services.js";

/** A database to run against, and how to let go of it. */
export interface DatabaseHandle {
  url: string;
  kind: "external" | "embedded" | "container";
  stop(): Promise<void>;
}

/** Starts the embedded engine, persisted under `.promptcraft/` unless `inMemory`. */
export async function startEmbedded(options: { inMemory?: boolean; port?: number; log?: (line: string) => void }): Promise<DatabaseHandle> {
  const engine: EmbeddedPostgres = await startEmbeddedPostgres({
    dataDir: options.inMemory ? undefined : path.join(REPO_ROOT, ".promptcraft", "pgdata"),
    port: options.port ?? 54329,
    log: options.log,
  });
  return { url: engine.url, kind: "embedded", stop: () => engine.stop() };
}

/** Applies every pending migration of every slice, printing one line per slice. */
export async function migrateAll(url: string, log: (line: string) => void = () => {}): Promise<void> {
  const knex = createKnex({ url, poolMax: 1, applicationName: "promptcraft-migrate" });
  try {
    await migrateUp(knex, SCHEMA_SLICES, log);
  } finally {
    await knex.destroy();
  }
}

/** Hides the password of a URL for printing. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "****";
    return u.toString();
  } catch {
    return "(unparseable URL)";
  }
}
