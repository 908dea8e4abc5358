import { provisionTestDatabase } from "@promptcraft/testing";
import { spawn } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import path from "node:path";
import { migrateAll } from "./database.js";
import { REPO_ROOT } from "./services.js";

const WORKSPACE_DIRS = ["packages", "services"];

/**
 * Every compiled test file of the repository, or of the given workspace directories. Interop
 * tests (`*.interop.test.js`, which need clients from outside Node) are picked only when asked for.
 */
export function findTestFiles(only: readonly string[], interop = false): string[] {
  const roots = only.length
    ? only.map((p) => path.resolve(p))
    : [...WORKSPACE_DIRS.flatMap((d) => readdirSync(path.join(REPO_ROOT, d)).map((w) => path.join(REPO_ROOT, d, w))), path.join(REPO_ROOT, "test")];
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir)) {
      if (entry === "node_modules") continue;
      const full = path.join(dir, entry);
      if (statSync(full).isDirectory()) walk(full);
      else if (entry.endsWith(".test.js") && entry.endsWith(".interop.test.js") === interop) files.push(full);
    }
  };
  for (const root of roots) {
    const dist = path.join(root, "dist");
    try {
      if (statSync(dist).isDirectory()) walk(dist);
    } catch {
      // a workspace without a build has no tests to run
    }
  }
  return files.sort();
}

/**
 * `npm test`: provisions the database (DATABASE_URL, testcontainers or embedded), migrates it,
 * and runs every compiled test file with node's test runner in one run, so that one summary
 * closes the output. Resolves to the runner's exit code.
 */
export async function runTests(only: readonly string[], env: NodeJS.ProcessEnv, options: { interop?: boolean } = {}): Promise<number> {
  const files = findTestFiles(only, options.interop);
  if (files.length === 0) {
    console.error("no compiled test files found: run `npm run build` first");
    return 1;
  }
  const db = await provisionTestDatabase(env, (line) => console.log(line));
  try {
    console.log(`test database: ${db.kind}; migrating …`);
    await migrateAll(db.url, (line) => console.log(`  ${line}`));
    console.log(`running ${files.length} test files …`);
    const args = [
      "--enable-source-maps",
      "--test",
      "--test-reporter=spec",
      // A hung test must fail the run, not hold CI until its time limit.
      "--test-timeout=180000",
      ...files,
    ];
    const child = spawn(process.execPath, args, {
      stdio: "inherit",
      env: { ...env, DATABASE_URL: db.url, PROMPTCRAFT_TEST_DB_KIND: db.kind, PROMPTCRAFT_TEST_DB: undefined },
    });
    return await new Promise<number>((resolve) => child.once("exit", (code, signal) => resolve(code ?? (signal ? 1 : 0))));
  } finally {
    await db.stop();
  }
}
