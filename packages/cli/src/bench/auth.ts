import { grpcFrame, hasH2load, median } from "./h2load.js";
import { GRPC_HEADERS, grpcThroughput, startServerProcess, stop, type Server } from "./transport.js";

/**
 * `npm run bench auth`: the cost of access-token verification. The same trivial RPC
 * (IdentityService.GetTenant answering a constant) on two platform servers, one verifying the
 * bearer token in its pipeline and one open; both receive the same token. Paired runs in
 * alternating order; prints the median of the per-round ratios (goal ≥ 0.85).
 */
export async function benchAuth(args: string[]): Promise<number> {
  if (!(await hasH2load())) {
    console.error("h2load not found: install Debian's nghttp2-client (sudo apt-get install nghttp2-client)");
    return 1;
  }
  const rounds = Number(args[0] ?? process.env.BENCH_ROUNDS ?? 5);
  const seconds = Number(process.env.BENCH_SECONDS ?? 5);
  const withAuth = await startServerProcess("./auth-server.js", ["auth"]);
  const open = await startServerProcess("./auth-server.js", ["open"]);
  const token = withAuth.lines.get("TOKEN") ?? "";
  const load = {
    seconds,
    connections: 4,
    streams: 16,
    body: grpcFrame(new Uint8Array(0)),
    headers: { ...GRPC_HEADERS, authorization: `Bearer ${token}` },
  };
  const run = (server: Server) => grpcThroughput(server, "/promptcraft.identity.v1.IdentityService/GetTenant", load);
  const results = { auth: [] as number[], open: [] as number[], ratio: [] as number[] };
  try {
    // One call first: the failure of a wrong token would show as failed requests, not as speed.
    await run(withAuth).catch((err: Error) => {
      throw new Error(`authenticated calls fail: ${err.message}`);
    });
    console.log(`auth benchmark: GetTenant (trivial handler), h2load 1 thread, ${load.connections} connections × ${load.streams} streams, ${seconds}s per run, ${rounds} rounds`);
    for (let round = 1; round <= rounds; round++) {
      let a: number, o: number;
      if (round % 2) {
        a = await run(withAuth);
        o = await run(open);
      } else {
        o = await run(open);
        a = await run(withAuth);
      }
      results.auth.push(a);
      results.open.push(o);
      results.ratio.push(a / o);
      console.log(`  round ${round}: authenticated ${a.toFixed(0)} req/s, unauthenticated ${o.toFixed(0)} req/s (ratio ${(a / o).toFixed(2)})`);
    }
  } finally {
    await Promise.all([stop(withAuth), stop(open)]);
  }
  const ratio = median(results.ratio);
  console.log("");
  console.log(`  median authenticated   : ${median(results.auth).toFixed(0)} req/s`);
  console.log(`  median unauthenticated : ${median(results.open).toFixed(0)} req/s`);
  console.log(`  ratio auth / open      : ${ratio.toFixed(2)} (median of per-round ratios; goal ≥ 0.85) ${ratio >= 0.85 ? "✓" : "✗ below goal"}`);
  return 0;
}
