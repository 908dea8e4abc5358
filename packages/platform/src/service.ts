import { createKnex, type Knex, type ServiceName } from "@promptcraft/db";
import type { z } from "zod";
import type { baseConfigShape } from "./config.js";
import { ConfigError, loadConfig } from "./config.js";
import type { ServiceRegistration } from "./handlers.js";
import { createLogger, type Logger } from "./logger.js";
import { runProcess } from "./run.js";
import { startServer, type RunningServer } from "./server.js";

/** The settings every service config has (see `serviceConfig`). */
export type BaseServiceConfig = { [K in keyof typeof baseConfigShape]: z.infer<(typeof baseConfigShape)[K]> } & {
  GRPC_PORT: number;
  CONNECT_PORT: number;
};

/** What every service's handlers get: its parsed config, its database pool, its logger. */
export interface ServiceDeps<C extends BaseServiceConfig = BaseServiceConfig> {
  config: C;
  db: Knex;
  log: Logger;
}

/**
 * A service, described once: its name (which is also its database role), its config schema, and
 * its RPC services. `startService` and `runService` do the rest the same way for all five.
 */
export interface ServiceModule<C extends BaseServiceConfig = BaseServiceConfig> {
  name: ServiceName;
  config: z.ZodType<C>;
  routes(deps: ServiceDeps<C>): ServiceRegistration[];
}

/** A started service: its server plus the resources it owns. */
export interface RunningService extends RunningServer {
  readonly deps: ServiceDeps;
}

/**
 * Starts `module` with `config`: checks the database is reachable (failing with a clear message
 * if not), then serves both transports. `close()` drains calls, then closes the pool.
 */
export async function startService<C extends BaseServiceConfig>(
  module: ServiceModule<C>,
  config: C,
  log: Logger = createLogger(module.name, config.LOG_LEVEL),
): Promise<RunningService> {
  const db = createKnex({ url: config.DATABASE_URL, poolMax: config.DB_POOL_MAX, applicationName: `promptcraft-${module.name}` });
  try {
    await db.raw("select 1");
  } catch (err) {
    await db.destroy();
    throw new Error(`${module.name}: cannot reach the database at ${hostOf(config.DATABASE_URL)}: ${(err as Error).message}`, { cause: err });
  }
  const deps: ServiceDeps<C> = { config, db, log };
  let server: RunningServer;
  try {
    server = await startServer({
      name: module.name,
      host: config.HOST,
      grpcPort: config.GRPC_PORT,
      connectPort: config.CONNECT_PORT,
      services: module.routes(deps),
      log,
      shutdownGraceMs: config.SHUTDOWN_GRACE_MS,
    });
  } catch (err) {
    await db.destroy();
    throw err;
  }
  return {
    ...server,
    grpcPort: server.grpcPort,
    connectPort: server.connectPort,
    deps: deps as unknown as ServiceDeps,
    async close() {
      await server.close();
      await db.destroy();
    },
  };
}

/**
 * The whole `main.ts` of a service: parse config from the environment (exit 1 with the list of
 * bad variables), start, and stop gracefully on SIGTERM/SIGINT.
 */
export function runService<C extends BaseServiceConfig>(module: ServiceModule<C>): void {
  let config: C;
  try {
    config = loadConfig(module.config);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${module.name}: ${err.message}\n`);
    process.exit(1);
  }
  const log = createLogger(module.name, config.LOG_LEVEL);
  runProcess(module.name, log, () => startService(module, config, log), { stopWhenStdinCloses: config.STOP_WHEN_STDIN_CLOSES });
}

function hostOf(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || 5432}${u.pathname}`;
  } catch {
    return "(unparseable DATABASE_URL)";
  }
}
