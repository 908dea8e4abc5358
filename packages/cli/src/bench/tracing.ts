import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { grpcFrame, h2load, hasH2load, median } from "./h2load.js";
import { GRPC_HEADERS, startServerProcess, stop, type Server } from "./transport.js";

const METHOD = "/promptcraft.identity.v1.IdentityService/GetTenant";
type Variant = "off" | "on" | "unsampled";

/**
 * `npm run bench tracing`: the cost of tracing per call. The auth benchmark's trivial RPC
 * (GetTenant behind access-token verification) on two platform servers, one with tracing off and
 * one exporting every span over OTLP/HTTP to a sink in this process (which counts and discards
 * them). Every request carries a `traceparent`: sampled (flags 01: a SERVER span per call,
 * exported), and, against the traced server only, unsampled (flags 00: the span is only
 * propagated). Rounds run the three in rotating order; prints throughput and the server's CPU time
 * per call (from /proc: steadier than throughput on a shared machine), with the medians of the
 * per-round ratios against tracing off.
 */
export async function benchTracing(args: string[]): Promise<number> {
  if (!(await hasH2load())) {
    console.error("h2load not found: install Debian's nghttp2-client (sudo apt-get install nghttp2-client)");
    return 1;
  }
  const rounds = Number(args[0] ?? process.env.BENCH_ROUNDS ?? 5);
  const seconds = Number(process.env.BENCH_SECONDS ?? 5);
  const sink = await startSink();
  const off = await startServerProcess("./tracing-server.js", ["off"]);
  const on = await startServerProcess("./tracing-server.js", ["on", sink.url]);
  const traceId = randomBytes(16).toString("hex");
  const parentId = randomBytes(8).toString("hex");
  const measure = async (server: Server, flags: "00" | "01") => {
    const before = cpuSeconds(server);
    const r = await h2load({
      url: `http://127.0.0.1:${server.ports[0]}${METHOD}`,
      seconds,
      connections: 4,
      streams: 16,
      warmUpSeconds: 0,
      body: grpcFrame(new Uint8Array(0)),
      headers: { ...GRPC_HEADERS, authorization: `Bearer ${server.lines.get("TOKEN") ?? ""}`, traceparent: `00-${traceId}-${parentId}-${flags}` },
    });
    if (r.failed > 0) throw new Error(`${r.failed} requests failed`);
    return { rps: r.requestsPerSecond, cpuUs: ((cpuSeconds(server) - before) * 1e6) / r.succeeded, calls: r.succeeded };
  };
  const variants: Record<Variant, () => ReturnType<typeof measure>> = {
    off: () => measure(off, "01"),
    on: () => measure(on, "01"),
    unsampled: () => measure(on, "00"),
  };
  const rps: Record<Variant, number[]> = { off: [], on: [], unsampled: [] };
  const cpu: Record<Variant, number[]> = { off: [], on: [], unsampled: [] };
  const ratio = { on: [] as number[], unsampled: [] as number[], cpuOn: [] as number[], cpuUnsampled: [] as number[] };
  let sampledCalls = 0;
  try {
    // Warm-ups (JIT, connections), then the sink counts from zero.
    for (const v of Object.values(variants)) await v();
    await new Promise((resolve) => setTimeout(resolve, 6000));
    sink.reset();
    console.log(`tracing benchmark: GetTenant behind token verification, h2load 1 thread, 4 connections × 16 streams, ${seconds}s per run, ${rounds} rounds`);
    for (let round = 1; round <= rounds; round++) {
      const order: Variant[] = ["off", "on", "unsampled"];
      // Rotate the order each round, so drift and ordering effects hit every variant alike.
      for (let i = 0; i < round % 3; i++) order.push(order.shift()!);
      const r = {} as Record<Variant, Awaited<ReturnType<typeof measure>>>;
      for (const name of order) r[name] = await variants[name]();
      for (const name of order) {
        rps[name].push(r[name].rps);
        cpu[name].push(r[name].cpuUs);
      }
      sampledCalls += r.on.calls;
      ratio.on.push(r.on.rps / r.off.rps);
      ratio.unsampled.push(r.unsampled.rps / r.off.rps);
      ratio.cpuOn.push(r.on.cpuUs / r.off.cpuUs);
      ratio.cpuUnsampled.push(r.unsampled.cpuUs / r.off.cpuUs);
      const show = (name: Variant) => `${name} ${r[name].rps.toFixed(0)} req/s ${r[name].cpuUs.toFixed(0)} µs CPU/call`;
      console.log(`  round ${round}: ${show("off")}; ${show("on")}; ${show("unsampled")}`);
    }
    // The last batch goes out within the processor's 5 s delay.
    await new Promise((resolve) => setTimeout(resolve, 6000));
  } finally {
    await Promise.all([stop(off), stop(on)]);
    await sink.close();
  }
  console.log("");
  const line = (label: string, v: Variant) => `  ${label.padEnd(28)}: ${median(rps[v]).toFixed(0)} req/s, ${median(cpu[v]).toFixed(1)} µs CPU per call`;
  console.log(line("tracing off", "off"));
  console.log(line("tracing on, sampled", "on"));
  console.log(line("tracing on, unsampled parent", "unsampled"));
  console.log(`  ratio on / off              : throughput ${median(ratio.on).toFixed(2)}, CPU per call ${median(ratio.cpuOn).toFixed(2)} (medians of per-round ratios)`);
  console.log(`  ratio unsampled / off       : throughput ${median(ratio.unsampled).toFixed(2)}, CPU per call ${median(ratio.cpuUnsampled).toFixed(2)}`);
  // Spans the batch processor dropped (its queue full) are not exported: say how many arrived.
  console.log(`  spans exported              : ${sink.spans()} of ${sampledCalls} sampled calls, in ${sink.posts()} OTLP requests (${sink.megabytes().toFixed(1)} MB)`);
  return 0;
}

const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** User plus system CPU time of a server process so far, in seconds (Linux /proc). */
function cpuSeconds(server: Server): number {
  const stat = readFileSync(`/proc/${server.process.pid}/stat`, "utf8");
  // Fields after the command name in parentheses; utime and stime are the 14th and 15th of the line.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** An OTLP/HTTP endpoint that counts the spans it receives (by an attribute key each span has once) and discards them. */
async function startSink(): Promise<{ url: string; reset(): void; spans(): number; posts(): number; megabytes(): number; close(): Promise<void> }> {
  const needle = Buffer.from("promptcraft.request_id");
  let spans = 0;
  let posts = 0;
  let bytes = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      posts++;
      bytes += body.length;
      for (let at = body.indexOf(needle); at !== -1; at = body.indexOf(needle, at + needle.length)) spans++;
      res.writeHead(200, { "content-type": "application/x-protobuf" });
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    reset: () => void (spans = posts = bytes = 0),
    spans: () => spans,
    posts: () => posts,
    megabytes: () => bytes / 1e6,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
