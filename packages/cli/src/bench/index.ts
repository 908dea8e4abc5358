import { benchLogin } from "./login.js";
import { benchAuth } from "./auth.js";
import { benchTransport } from "./transport.js";
import { benchContent } from "./content.js";
import { benchEmbedded } from "./embedded.js";
import { benchTracing } from "./tracing.js";
import { benchAnalyticsIngest } from "./analytics-ingest.js";
import { benchAnalyticsTail } from "./analytics-tail.js";
import { benchAnalyticsSummary } from "./analytics-summary.js";
import { benchAnalyticsEntityStats } from "./analytics-entity-stats.js";
import { benchGraph } from "./graph.js";
import { benchSearch } from "./search.js";

/** `bench analytics [ingest] [tail] [summary] [entity-stats]`: the analytics benchmarks by name (all when none is named); their own flags follow. */
const ANALYTICS: Record<string, (args: string[]) => Promise<number>> = {
  ingest: benchAnalyticsIngest,
  tail: benchAnalyticsTail,
  summary: benchAnalyticsSummary,
  "entity-stats": benchAnalyticsEntityStats,
};
async function benchAnalytics(args: string[]): Promise<number> {
  const named = args.filter((a) => a in ANALYTICS);
  const rest = args.filter((a) => !(a in ANALYTICS));
  let code = 0;
  for (const name of named.length ? named : Object.keys(ANALYTICS)) code ||= await ANALYTICS[name]!(rest);
  return code;
}

const SUITES: Record<string, (args: string[]) => Promise<number>> = {
  transport: benchTransport,
  auth: benchAuth,
  login: benchLogin,
  content: benchContent,
  embedded: benchEmbedded,
  tracing: benchTracing,
  analytics: benchAnalytics,
  graph: benchGraph,
  search: benchSearch,
  // The tail benchmark's first name, kept: `bench analytics-tail [--events N …]`.
  "analytics-tail": benchAnalyticsTail,
};

/** `promptcraft bench [suite…]`: runs the named suites, or all of them. */
export async function runBench(args: string[]): Promise<number> {
  // All suites: the tail benchmark once, as part of `analytics`.
  const names = args.length ? args.filter((a) => a in SUITES) : Object.keys(SUITES).filter((n) => n !== "analytics-tail");
  // `--scale N`: the summary benchmark's size (its N passes as a number).
  const unknown = args.filter((a) => !(a in SUITES) && !(a in ANALYTICS) && !/^[\d.]+$/.test(a) && a !== "--scale");
  if (unknown.length) {
    console.error(`unknown benchmark ${unknown.join(", ")}; known: ${Object.keys(SUITES).join(", ")}`);
    return 2;
  }
  let code = 0;
  for (const name of names) code ||= await SUITES[name]!(args.filter((a) => /^[\d.]+$/.test(a) || ((name === "analytics" || name === "graph") && (a in ANALYTICS || a === "--scale"))));
  return code;
}
