import type { Knex } from "knex";

/** One migration: knex's format, supplied in code so that built JavaScript and tests run alike. */
export interface Migration {
  /** `YYYYMMDDHHMMSS_verb_noun`; the order within a slice is the order of names. */
  name: string;
  up: (knex: Knex) => Promise<void>;
  down: (knex: Knex) => Promise<void>;
}

/** The migrations of one owner of a slice of the schema, tracked in `<name>_migrations`. */
export interface SchemaSlice {
  name: string;
  migrations: readonly Migration[];
}

/** What {@link migrateUp} / {@link migrateDown} report for each slice. */
export interface SliceResult {
  slice: string;
  applied: string[];
}

function sourceOf(slice: SchemaSlice): Knex.MigrationSource<Migration> {
  const sorted = [...slice.migrations].sort((a, b) => a.name.localeCompare(b.name));
  return {
    getMigrations: () => Promise.resolve(sorted),
    getMigrationName: (m) => m.name,
    getMigration: (m) => Promise.resolve({ up: m.up, down: m.down }),
  };
}

function configOf(slice: SchemaSlice): Knex.MigratorConfig {
  return { migrationSource: sourceOf(slice), tableName: `${slice.name}_migrations` };
}

/**
 * Applies every pending migration of every slice, slices in the given (dependency) order.
 * Idempotent: applied migrations are recorded per slice and skipped.
 */
export async function migrateUp(
  knex: Knex,
  slices: readonly SchemaSlice[],
  onProgress: (line: string) => void = () => {},
): Promise<SliceResult[]> {
  const results: SliceResult[] = [];
  for (const slice of slices) {
    const [, applied] = (await knex.migrate.latest(configOf(slice))) as [number, string[]];
    onProgress(`${slice.name}: ${applied.length ? `applied ${applied.join(", ")}` : "up to date"}`);
    results.push({ slice: slice.name, applied });
  }
  return results;
}

/**
 * Rolls back every migration of every slice, in reverse dependency order (`all`), or only the
 * newest batch of each slice.
 */
export async function migrateDown(
  knex: Knex,
  slices: readonly SchemaSlice[],
  options: { all: boolean } = { all: true },
  onProgress: (line: string) => void = () => {},
): Promise<SliceResult[]> {
  const results: SliceResult[] = [];
  for (const slice of [...slices].reverse()) {
    const [, reverted] = (await knex.migrate.rollback(configOf(slice), options.all)) as [number, string[]];
    onProgress(`${slice.name}: ${reverted.length ? `reverted ${reverted.join(", ")}` : "nothing to revert"}`);
    results.push({ slice: slice.name, applied: reverted });
  }
  return results;
}

/** Pending migration names per slice (empty lists when the schema is current). */
export async function migrationStatus(
  knex: Knex,
  slices: readonly SchemaSlice[],
): Promise<{ slice: string; applied: string[]; pending: string[] }[]> {
  const out = [];
  for (const slice of slices) {
    const [done, pending] = (await knex.migrate.list(configOf(slice))) as [{ name: string }[], Migration[]];
    out.push({ slice: slice.name, applied: done.map((d) => d.name), pending: pending.map((p) => p.name) });
  }
  return out;
}
