import { benchLogin } from "./login.js";
import { benchAuth } from "./auth.js";
import { benchTransport } from "./transport.js";
import { benchContent } from "./content.js";
import { benchEmbedded } from "./embedded.js";
import { benchTracing } from "./tracing.js";
import { benchAnalyticsTail } from "./analytics-tail.js";

const SUITES: Record<string, (args: string[]) => Promise<number>> = {
  transport: benchTransport,
  auth: benchAuth,
  login: benchLogin,
  content: benchContent,
  embedded: benchEmbedded,
  tracing: benchTracing,
  // Until the lead's `bench analytics` dispatcher: `bench analytics-tail [--events N …]`.
  "analytics-tail": benchAnalyticsTail,
};

/** `promptcraft bench [suite…]`: runs the named suites, or all of them. */
export async function runBench(args: string[]): Promise<number> {
  const names = args.length ? args.filter((a) => a in SUITES) : Object.keys(SUITES);
  const unknown = args.filter((a) => !(a in SUITES) && !/^\d+$/.test(a));
  if (unknown.length) {
    console.error(`unknown benchmark ${unknown.join(", ")}; known: ${Object.keys(SUITES).join(", ")}`);
    return 2;
  }
  let code = 0;
  for (const name of names) code ||= await SUITES[name]!(args.filter((a) => /^\d+$/.test(a)));
  return code;
}
