import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { grpcFrame, h2load, hasH2load, median } from "./h2load.js";

/** A benchmark server in its own process, and what it printed at start (`PORTS …`, `TOKEN …`). */
export interface Server {
  ports: number[];
  lines: Map<string, string>;
  process: ChildProcess;
}

/** Starts `script` (next to this file) with `args` and extra `env`; resolves once it printed its ports. */
export async function startServerProcess(script: string, args: string[] = [], env: Record<string, string> = {}): Promise<Server> {
  const child = spawn(process.execPath, [fileURLToPath(new URL(script, import.meta.url)), ...args], {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? "info", ...env },
  });
  const lines = new Map<string, string>();
  await new Promise<void>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`${script} exited with ${code}`)));
    // The server logs on stdout too; our lines are tagged and the port line comes last. Keep
    // draining so the server never blocks on a full pipe.
    createInterface({ input: child.stdout }).on("line", (l) => {
      const tag = /^(PORTS|TOKEN) (.*)$/.exec(l);
      if (!tag) return;
      lines.set(tag[1]!, tag[2]!.trim());
      if (tag[1] === "PORTS") resolve();
    });
  });
  child.removeAllListeners("exit");
  return { ports: (lines.get("PORTS") ?? "").split(" ").map(Number), lines, process: child };
}

/** Stops a benchmark server and waits for it to exit. */
export async function stop(server: Server): Promise<void> {
  const exited = new Promise((resolve) => server.process.once("exit", resolve));
  server.process.kill("SIGTERM");
  await exited;
}

export const GRPC_HEADERS = { "content-type": "application/grpc", te: "trailers" };

/** Requests per second of one h2load run on `path` of `server`'s gRPC port; any failed request fails the benchmark. */
export async function grpcThroughput(server: Server, path: string, load: Omit<Parameters<typeof h2load>[0], "url">): Promise<number> {
  const r = await h2load({ ...load, url: `http://127.0.0.1:${server.ports[0]}${path}` });
  if (r.failed > 0) throw new Error(`${r.failed} requests failed`);
  return r.requestsPerSecond;
}
const EMPTY_HEALTH_REQUEST = grpcFrame(new Uint8Array(0));

/**
 * `npm run bench:transport`: throughput of `grpc.health.v1.Health/Check` on the platform's gRPC
 * port against a bare grpc-js server in the same run: paired runs per round in alternating order,
 * so that machine noise hits both alike; prints each round, the medians and the median of the
 * per-round ratios (goal ≥ 0.8). The Connect port
 * is measured too, for the record.
 */
export async function benchTransport(args: string[]): Promise<number> {
  if (!(await hasH2load())) {
    console.error("h2load not found: install Debian's nghttp2-client (sudo apt-get install nghttp2-client)");
    return 1;
  }
  const rounds = Number(args[0] ?? process.env.BENCH_ROUNDS ?? 5);
  const seconds = Number(process.env.BENCH_SECONDS ?? 5);
  const load = { seconds, connections: 4, streams: 16, body: EMPTY_HEALTH_REQUEST, headers: GRPC_HEADERS };
  const platform = await startServerProcess("./platform-server.js");
  const bare = await startServerProcess("./bare-grpc-server.js");
  const results = { platform: [] as number[], bare: [] as number[], connect: [] as number[], ratio: [] as number[] };
  const grpcRun = (server: Server) => grpcThroughput(server, "/grpc.health.v1.Health/Check", load);
  try {
    console.log(`transport benchmark: Health/Check, h2load 1 thread, ${load.connections} connections × ${load.streams} streams, ${seconds}s per run, ${rounds} rounds`);
    for (let round = 1; round <= rounds; round++) {
      // Paired runs, in alternating order, so drift and ordering effects hit both sides alike.
      let ours: number, base: number;
      if (round % 2) {
        ours = await grpcRun(platform);
        base = await grpcRun(bare);
      } else {
        base = await grpcRun(bare);
        ours = await grpcRun(platform);
      }
      const connect = await h2load({
        ...load,
        headers: { "content-type": "application/json" },
        body: new TextEncoder().encode("{}"),
        url: `http://127.0.0.1:${platform.ports[1]}/grpc.health.v1.Health/Check`,
      });
      if (connect.failed > 0) throw new Error(`Connect: ${connect.failed} requests failed`);
      results.platform.push(ours);
      results.bare.push(base);
      results.connect.push(connect.requestsPerSecond);
      results.ratio.push(ours / base);
      console.log(
        `  round ${round}: platform gRPC ${ours.toFixed(0)} req/s, bare grpc-js ${base.toFixed(0)} req/s (ratio ${(ours / base).toFixed(2)}), platform Connect ${connect.requestsPerSecond.toFixed(0)} req/s`,
      );
    }
  } finally {
    await Promise.all([stop(platform), stop(bare)]);
  }
  const ratio = median(results.ratio);
  console.log("");
  console.log(`  median platform gRPC port : ${median(results.platform).toFixed(0)} req/s`);
  console.log(`  median bare grpc-js       : ${median(results.bare).toFixed(0)} req/s`);
  console.log(`  median platform Connect   : ${median(results.connect).toFixed(0)} req/s`);
  console.log(`  ratio platform / bare     : ${ratio.toFixed(2)} (median of per-round ratios; goal ≥ 0.80) ${ratio >= 0.8 ? "✓" : "✗ below goal"}`);
  return 0;
}
