// One vitest run for the whole repository: a project per workspace (tests beside the code in
// `src/**/*.test.ts`) plus the cross-service tier in `test/`. `npm test` (packages/cli/src/test.ts)
// provisions and migrates the database first and hands it over in DATABASE_URL.
import { existsSync, readdirSync } from "node:fs";
import { availableParallelism } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const ROOT = path.dirname(fileURLToPath(import.meta.url));
const WORKSPACES = [
  ...["packages", "services"].flatMap((dir) =>
    readdirSync(path.join(ROOT, dir))
      .map((name) => `${dir}/${name}`)
      .filter((ws) => existsSync(path.join(ROOT, ws, "package.json"))),
  ),
  "test",
];
const INTEROP = "**/*.interop.test.ts";

export default defineConfig({
  test: {
    // Each file in its own child process, one file at a time on a 2-core machine (as node --test
    // did): the e2e files share one database and some process-wide counters.
    pool: "forks",
    isolate: true,
    maxWorkers: Math.max(1, availableParallelism() - 1),
    // A hung test or hook must fail the run, not hold CI until its time limit; the e2e `beforeAll`
    // hooks start services.
    testTimeout: 180_000,
    hookTimeout: 180_000,
    // Hooks in the order written, as node:test runs them (vitest's default runs `afterAll` in reverse).
    sequence: { hooks: "list" },
    // A `{ concurrent: true }` suite runs all its tests at once (node:test's `concurrency: true`).
    maxConcurrency: 32,
    // Other workspaces are imported from their build (dist), natively, as in production.
    server: { deps: { external: [/\/(packages|services)\/[^/]+\/dist\//] } },
    execArgv: ["--enable-source-maps"],
    projects: [
      ...WORKSPACES.map((root) => ({
        extends: true as const,
        test: { name: root, root, include: ["src/**/*.test.ts"], exclude: [INTEROP] },
      })),
      // Tests against clients from outside Node (a C-core gRPC client): `npm run test:interop` only.
      { extends: true as const, test: { name: "interop", root: "test", include: [`src/${INTEROP}`] } },
    ],
  },
});
