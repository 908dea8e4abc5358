import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { pg, startEmbeddedPostgres, type EmbeddedPostgres } from "@promptcraft/db";
import { median } from "./h2load.js";

/**
 * `npm run bench embedded`: what durability costs on the embedded engine. Two persisted engines in
 * one process, one with `durable: false` (PGlite's default, fsync off) and one with `durable: true`
 * (what `npm start` uses); through the wire server with `pg`, each round runs N committed
 * single-row INSERTs, then N single-row UPDATEs, on each engine, alternating which goes first.
 * Prints per-round writes/s, the medians and the ratios. The disk is the one under the OS temp
 * directory (`TMPDIR`).
 */
export async function benchEmbedded(args: string[]): Promise<number> {
  const rounds = Number(args[0] ?? process.env.BENCH_ROUNDS ?? 7);
  const writes = Number(process.env.BENCH_WRITES ?? 200);
  const dir = mkdtempSync(path.join(tmpdir(), "promptcraft-bench-embedded-"));
  const engines: Record<"off" | "on", EmbeddedPostgres | undefined> = { off: undefined, on: undefined };
  const clients: pg.Client[] = [];
  try {
    for (const mode of ["off", "on"] as const) {
      engines[mode] = await startEmbeddedPostgres({ dataDir: path.join(dir, mode), port: 0, durable: mode === "on" });
    }
    const client = async (engine: EmbeddedPostgres): Promise<pg.Client> => {
      const c = new pg.Client({ connectionString: engine.url });
      await c.connect();
      clients.push(c);
      await c.query("create table bench (id int primary key, v text not null)");
      return c;
    };
    const off = await client(engines.off!);
    const on = await client(engines.on!);
    const result = { off: { insert: [] as number[], update: [] as number[] }, on: { insert: [] as number[], update: [] as number[] } };
    const perSecond = async (work: (i: number) => Promise<unknown>): Promise<number> => {
      const began = performance.now();
      for (let i = 0; i < writes; i++) await work(i);
      return writes / ((performance.now() - began) / 1000);
    };
    console.log(`embedded engine, ${writes} committed single-row writes per measurement, fsync off vs on, ${rounds} paired rounds`);
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? (["off", "on"] as const) : (["on", "off"] as const);
      for (const mode of order) {
        const c = mode === "off" ? off : on;
        const base = round * writes;
        result[mode].insert.push(await perSecond((i) => c.query("insert into bench (id, v) values ($1, $2)", [base + i, "inserted"])));
        result[mode].update.push(await perSecond((i) => c.query("update bench set v = $2 where id = $1", [base + i, "updated"])));
      }
      const r = (kind: "insert" | "update") => `${kind} off ${result.off[kind][round]!.toFixed(0)}/s on ${result.on[kind][round]!.toFixed(0)}/s`;
      console.log(`  round ${round + 1}: ${r("insert")}; ${r("update")}`);
    }
    for (const kind of ["insert", "update"] as const) {
      const offMedian = median(result.off[kind]);
      const onMedian = median(result.on[kind]);
      const pairedRatio = median(result.off[kind].map((v, i) => v / result.on[kind][i]!));
      console.log(
        `${kind}: median off ${offMedian.toFixed(0)}/s (${(1000 / offMedian).toFixed(2)} ms), ` +
          `on ${onMedian.toFixed(0)}/s (${(1000 / onMedian).toFixed(2)} ms); off/on ${(offMedian / onMedian).toFixed(2)}× ` +
          `(median of paired ratios ${pairedRatio.toFixed(2)}×)`,
      );
    }
    return 0;
  } finally {
    await Promise.all(clients.map((c) => c.end()));
    for (const engine of Object.values(engines)) await engine?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
