import { pino, type Logger } from "pino";

/**
 * The root logger of a process: JSON lines on stdout (what log shippers expect), with the
 * service name on every line. Pretty printing is a viewer's job (`| npx pino-pretty`).
 */
export function createLogger(service: string, level: string): Logger {
  return pino({ name: service, level, base: { service }, timestamp: pino.stdTimeFunctions.isoTime });
}

export type { Logger };
