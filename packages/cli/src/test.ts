import { provisionTestDatabase } from "@promptcraft/testing";
import { spawn } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { migrateAll } from "./database.js";
import { REPO_ROOT } from "./services.js";

/**
 * The vitest command line for `npm test [--interop] [arg…]`: one run over the projects of
 * `vitest.config.ts` (every workspace, and `test/`), or over the interop tier alone. A path argument
 * (a workspace, a directory, a test file) narrows the run to the tests under it; an argument that
 * starts with `-` goes to vitest as it is (`--reporter=verbose`, `--testNamePattern=…`).
 */
export function vitestArgs(args: readonly string[], interop = false): string[] {
  const vitest = path.join(path.dirname(createRequire(path.join(REPO_ROOT, "package.json")).resolve("vitest/package.json")), "vitest.mjs");
  const filters = args.map((arg) => {
    if (arg.startsWith("-")) return arg;
    const full = path.resolve(arg);
    if (!existsSync(full)) throw new Error(`no such file or directory: ${arg}`);
    // An absolute filter selects the files under it; a directory's ends with a separator so that
    // `services/content` does not also pick `services/content-x`.
    return statSync(full).isDirectory() ? full + path.sep : full;
  });
  return [vitest, "run", `--project=${interop ? "interop" : "!interop"}`, ...filters];
}

/**
 * `npm test`: provisions the database (DATABASE_URL, testcontainers or embedded), migrates it, and
 * runs the test files with vitest in one run, so that one summary closes the output. The database
 * reaches the tests as DATABASE_URL and its kind as PROMPTCRAFT_TEST_DB_KIND. Resolves to vitest's
 * exit code.
 */
export async function runTests(args: readonly string[], env: NodeJS.ProcessEnv, options: { interop?: boolean } = {}): Promise<number> {
  let argv: string[];
  try {
    argv = vitestArgs(args, options.interop);
  } catch (e) {
    console.error(`npm test: ${(e as Error).message}`);
    return 2;
  }
  const db = await provisionTestDatabase(env, (line) => console.log(line));
  try {
    console.log(`test database: ${db.kind}; migrating …`);
    await migrateAll(db.url, (line) => console.log(`  ${line}`));
    const child = spawn(process.execPath, argv, {
      cwd: REPO_ROOT,
      stdio: "inherit",
      env: { ...env, DATABASE_URL: db.url, PROMPTCRAFT_TEST_DB_KIND: db.kind, PROMPTCRAFT_TEST_DB: undefined },
    });
    return await new Promise<number>((resolve) => child.once("exit", (code, signal) => resolve(code ?? (signal ? 1 : 0))));
  } finally {
    await db.stop();
  }
}
