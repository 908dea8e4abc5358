import { pino, type Logger } from "pino";

/**
 * The root logger of a process: JSON lines on stdout (what log shippers expect), with the
 * service name on every line. Pretty printing is a viewer's job (`| npx pino-pretty`).
 *
 * Lines go through `process.stdout` rather than pino's default sonic-boom writer: when the reader
 * of stdout goes away (a killed `npm start`, a closed pipe), sonic-boom's exit-time flush retries
 * the failed write forever and the process can never exit. Here a broken stdout just stops logging.
 */
export function createLogger(service: string, level: string): Logger {
  return pino({ name: service, level, base: { service }, timestamp: pino.stdTimeFunctions.isoTime }, stdoutDestination());
}

let destination: { write(line: string): void } | undefined;

function stdoutDestination(): { write(line: string): void } {
  if (destination) return destination;
  let broken = false;
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE" || err.code === "ERR_STREAM_DESTROYED") broken = true;
    else throw err;
  });
  destination = {
    write(line: string) {
      if (!broken) process.stdout.write(line);
    },
  };
  return destination;
}

export type { Logger };
