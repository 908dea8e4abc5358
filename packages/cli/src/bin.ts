#!/usr/bin/env node
import { createKnex, migrateDown, migrateUp, migrationStatus } from "@promptcraft/db";
import { z } from "zod";
import { loadConfig, platformAdminTokenField } from "@promptcraft/platform";
import { redact } from "./database.js";
import { SCHEMA_SLICES } from "./schema.js";
import { clientUrl, conflictingUrls, serviceEndpoints, stateDir } from "./services.js";
import { start } from "./start.js";
import { runTests } from "./test.js";
import { login } from "./login.js";
import { tenantCommand, userCommand } from "./admin.js";
import { eventsCommand } from "./events.js";

const USAGE = `promptcraft <command>

  start                     run the whole platform (embedded PostgreSQL unless DATABASE_URL)
  migrate [up|down|status]  apply, roll back (all) or list the schema migrations of DATABASE_URL
  test [--interop] [path…] [--vitest-option…]
                            run the test suite with vitest (DATABASE_URL, testcontainers or
                            embedded); a path (workspace, directory, file) narrows it;
                            --interop: the tests against clients from outside Node (CI)
  login --tenant <slug> --email <e> [--password <p>] [--json]
                            log in and print an access token
  tenant create --slug <s> --owner-email <e> [--name <n>] [--owner-password <p>]
                            create a tenant and its first owner (PLATFORM_ADMIN_TOKEN); prints JSON
  user create --email <e> --role <owner|admin|editor|viewer> [--name <n>] [--password <p>]
                            create or invite a user in the tenant of PROMPTCRAFT_TOKEN; prints JSON
  events list               the event-log consumers: checkpoint, lease (DATABASE_URL, else the
                            embedded engine of a running \`npm start\`)
  events replay --consumer <name> --from <cursor|start|end>
                            reset a consumer's checkpoint so its projection is rebuilt from there
  bench [suite…]            run the benchmarks (transport, auth, login, content, analytics, search)

login, tenant and user reach identity at IDENTITY_URL; else where HOST and IDENTITY_GRPC_PORT put
it, as for start; else where a running \`npm start\` of this checkout serves it; else 127.0.0.1:50051.
A password may come from PROMPTCRAFT_PASSWORD instead (kept out of \`ps\`); one that starts with "-"
is given as --password=<p>.
`;

// HOST, the ports and the <SERVICE>_URLs are read by serviceEndpoints (services.ts).
const CliConfig = z.object({
  DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/, error: "must be a postgres:// URL" }).optional(),
  PROMPTCRAFT_EMBEDDED_PORT: z.coerce.number().int().min(0).max(65535).default(54329),
  LOG_LEVEL: z.string().default("info"),
  PROMPTCRAFT_READY_TIMEOUT_MS: z.coerce.number().int().min(1000).default(60_000),
  /** The platform administrator's secret (identity, analytics); npm start makes a fresh one per run if unset. */
  PLATFORM_ADMIN_TOKEN: platformAdminTokenField,
});

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const config = loadConfig(CliConfig);
  switch (command) {
    case "start": {
      const conflicts = conflictingUrls(process.env);
      if (conflicts.length) {
        process.stderr.write(`${conflicts.join("\n")}\n`);
        return 2;
      }
      const code = await start({
        databaseUrl: config.DATABASE_URL,
        embeddedPort: config.PROMPTCRAFT_EMBEDDED_PORT,
        logLevel: config.LOG_LEVEL,
        readyTimeoutMs: config.PROMPTCRAFT_READY_TIMEOUT_MS,
        platformAdminToken: config.PLATFORM_ADMIN_TOKEN,
        endpoints: serviceEndpoints(process.env),
        stateDir: stateDir(process.env),
      });
      // The health clients' connections would keep the process alive.
      return process.exit(code);
    }
    case "login":
      return login(rest, clientUrl("identity", process.env), process.env);
    case "tenant":
      return tenantCommand(rest, clientUrl("identity", process.env), process.env);
    case "user":
      return userCommand(rest, clientUrl("identity", process.env), process.env);
    case "migrate":
      return migrate(rest[0] ?? "up", config.DATABASE_URL);
    case "events":
      return eventsCommand(rest, config.DATABASE_URL ?? `postgres://postgres@127.0.0.1:${config.PROMPTCRAFT_EMBEDDED_PORT}/postgres`);
    case "test": {
      const interop = rest.includes("--interop");
      return runTests(rest.filter((a) => a !== "--interop"), process.env, { interop });
    }
    case "bench": {
      const { runBench } = await import("./bench/index.js");
      return runBench(rest);
    }
    case undefined:
    case "help":
    case "--help":
      process.stdout.write(USAGE);
      return 0;
    default:
      process.stderr.write(`unknown command: ${command}\n\n${USAGE}`);
      return 2;
  }
}

async function migrate(direction: string, url: string | undefined): Promise<number> {
  if (!url) {
    process.stderr.write("migrate needs DATABASE_URL (npm start migrates the embedded engine itself)\n");
    return 2;
  }
  const knex = createKnex({ url, poolMax: 1, applicationName: "promptcraft-migrate" });
  const log = (line: string) => console.log(`  ${line}`);
  try {
    console.log(`${redact(url)}:`);
    if (direction === "up") await migrateUp(knex, SCHEMA_SLICES, log);
    else if (direction === "down") await migrateDown(knex, SCHEMA_SLICES, { all: true }, log);
    else if (direction === "status") {
      for (const s of await migrationStatus(knex, SCHEMA_SLICES)) {
        log(`${s.slice}: ${s.applied.length} applied, ${s.pending.length} pending${s.pending.length ? ` (${s.pending.join(", ")})` : ""}`);
      }
    } else {
      process.stderr.write(`migrate: expected up, down or status, got ${direction}\n`);
      return 2;
    }
    return 0;
  } finally {
    await knex.destroy();
  }
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    if (err instanceof Error && err.message.includes("ECONNREFUSED")) {
      console.error("is the platform running? `npm start` in this checkout, or set IDENTITY_URL (see `promptcraft help`)");
    }
    process.exitCode = 1;
  },
);
