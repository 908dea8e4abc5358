import assert from "node:assert/strict";
import { createKnex, type Knex } from "@promptcraft/db";

/** The already-migrated database the test runner hands us. */
export function databaseUrl(): string {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error("DATABASE_URL must point to a migrated database (the test runner sets it)");
  return url;
}

/** A knex for one test file; destroy it in `after`. */
export function openKnex(): Knex {
  return createKnex({ url: databaseUrl(), poolMax: 4, applicationName: "promptcraft-schema-tests" });
}

/** What the `pg` driver puts on a database error. */
export interface PgError extends Error {
  code?: string;
  constraint?: string;
}

/**
 * Awaits `work`, which must fail with SQLSTATE `code` (and, when given, on one of `constraints`);
 * returns the error for further checks.
 */
export async function rejectsWith(
  work: Promise<unknown>,
  code: string,
  constraints?: string | readonly string[],
): Promise<PgError> {
  let error: PgError | undefined;
  try {
    await work;
  } catch (e) {
    error = e as PgError;
  }
  assert.ok(error, `expected SQLSTATE ${code}, but the statement succeeded`);
  assert.equal(error.code, code, `expected SQLSTATE ${code}, got ${String(error.code)}: ${error.message}`);
  if (constraints !== undefined) {
    const allowed = typeof constraints === "string" ? [constraints] : constraints;
    assert.ok(
      error.constraint !== undefined && allowed.includes(error.constraint),
      `expected constraint ${allowed.join(" or ")}, got ${String(error.constraint)}: ${error.message}`,
    );
  }
  return error;
}

/** SQLSTATEs used by the schema tests. */
export const SQLSTATE = {
  insufficientPrivilege: "42501",
  uniqueViolation: "23505",
  exclusionViolation: "23P01",
  foreignKeyViolation: "23503",
  checkViolation: "23514",
  invalidParameter: "22023",
} as const;

/** First row of a `knex.raw` result. */
export function firstRow<T>(result: { rows: T[] }): T {
  const row = result.rows[0];
  assert.ok(row, "expected a row");
  return row;
}

/** A deterministic unit-ish vector of `dims` dimensions, distinct per seed. */
export function vectorLiteral(dims: number, seed: number, jitter = 0): string {
  const values: string[] = [];
  for (let i = 0; i < dims; i++) {
    const v = Math.sin(seed * 12.9898 + i * 78.233) + (jitter ? Math.cos(i * 3.1 + jitter) * 0.01 : 0);
    values.push(v.toFixed(6));
  }
  return `[${values.join(",")}]`;
}
