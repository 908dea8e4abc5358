import { createKnex, migrateUp, startEmbeddedPostgres, type EmbeddedPostgres } from "@promptcraft/db";
import { SCHEMA_SLICES } from "./schema.js";

/** A database to run against, and how to let go of it. */
export interface DatabaseHandle {
  url: string;
  kind: "external" | "embedded" | "container";
  stop(): Promise<void>;
}

/** Starts the embedded engine, persisted in `dataDir` (`npm start`: `<state dir>/pgdata`), in memory without one. */
export async function startEmbedded(options: { dataDir?: string; port?: number; log?: (line: string) => void }): Promise<DatabaseHandle> {
  const engine: EmbeddedPostgres = await startEmbeddedPostgres({
    dataDir: options.dataDir,
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
