import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** True when h2load (Debian `nghttp2-client`) is on the PATH. */
export async function hasH2load(): Promise<boolean> {
  try {
    await run("h2load", ["--version"]);
    return true;
  } catch {
    return false;
  }
}

/** One h2load run's outcome. */
export interface LoadResult {
  requestsPerSecond: number;
  succeeded: number;
  failed: number;
}

/**
 * Drives `url` with h2load for `seconds` and returns its throughput. `body` is sent as each
 * request's payload (a length-prefixed gRPC message for gRPC).
 */
export async function h2load(options: {
  url: string;
  headers: Record<string, string>;
  body: Uint8Array;
  seconds: number;
  connections: number;
  streams: number;
  /** Seconds of load before measuring starts (default 1); 0 counts every request. */
  warmUpSeconds?: number;
}): Promise<LoadResult> {
  const bodyFile = path.join(tmpdir(), `promptcraft-bench-${process.pid}.bin`);
  writeFileSync(bodyFile, options.body);
  const args = [
    "-t", "1",
    "-c", String(options.connections),
    "-m", String(options.streams),
    "-D", String(options.seconds),
    ...(options.warmUpSeconds === 0 ? [] : ["--warm-up-time", String(options.warmUpSeconds ?? 1)]),
    "-d", bodyFile,
    ...Object.entries(options.headers).flatMap(([k, v]) => ["-H", `${k}: ${v}`]),
    options.url,
  ];
  const { stdout } = await run("h2load", args, { maxBuffer: 16 * 1024 * 1024 });
  const rps = /finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(stdout);
  const counts = /requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed/.exec(stdout);
  if (!rps || !counts) throw new Error(`cannot read h2load output:\n${stdout}`);
  return { requestsPerSecond: Number(rps[1]), succeeded: Number(counts[1]), failed: Number(counts[2]) };
}

/** A gRPC length-prefixed frame around `message`. */
export function grpcFrame(message: Uint8Array): Uint8Array {
  const frame = new Uint8Array(5 + message.length);
  new DataView(frame.buffer).setUint32(1, message.length);
  frame.set(message, 5);
  return frame;
}

/** The median of `values`. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}
