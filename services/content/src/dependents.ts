import { Code, ConnectError, createServiceClient, Http2SessionManager, withTraceContext } from "@promptcraft/client";
import { dependencyUnavailable, type CallContext, type Logger } from "@promptcraft/platform";
import { GraphService } from "@promptcraft/proto/promptcraft/graph/v1/graph_service_pb";
import type { Dependents, DependentsOf } from "./domain/entities.js";

/** Longest wait for graph's answer before DeleteEntity fails UNAVAILABLE (graph is local and answers in milliseconds). */
const GRAPH_TIMEOUT_MS = 3000;
/** How many dependents a refusal names. */
const NAMED_DEPENDENTS = 5;

/**
 * Asks the graph service (GRAPH_URL) which entities depend on one, for DeleteEntity's guard:
 * `AnalyzeImpact` at depth 1 over depends_on and part_of, **with the caller's own credentials**
 * (the bearer token of the call), so graph applies the caller's access — only dependents the caller
 * can see count. NOT_FOUND from graph (an entity graph does not know) means none. Graph unreachable
 * or failing: UNAVAILABLE (DEPENDENCY_UNAVAILABLE, `dependency: graph`, RetryInfo); `force` skips the
 * question. Returns undefined (no guard) when GRAPH_URL is not set, which start logs.
 */
/** The dependents lookup of one call (its credentials, signal and trace). */
export type DependentsLookup = (ctx: CallContext) => DependentsOf;

export function graphDependents(graphUrl: string | undefined, log: Logger): { lookup: DependentsLookup | undefined; close: () => void } {
  if (graphUrl === undefined) {
    log.warn("delete protection off: GRAPH_URL is not set (DeleteEntity will not check for dependents)");
    return { lookup: undefined, close: () => undefined };
  }
  const sessions = new Http2SessionManager(graphUrl, { idleConnectionTimeoutMs: 30_000 });
  const graph = createServiceClient(GraphService, graphUrl, { sessionManager: sessions, timeoutMs: GRAPH_TIMEOUT_MS });
  const lookup: DependentsLookup = (ctx) => async (entityId: string): Promise<Dependents> => {
    const authorization = ctx.header("authorization");
    try {
      const impact = await graph.analyzeImpact(
        { entityId, maxDepth: 1, maxResults: NAMED_DEPENDENTS },
        { headers: authorization ? { authorization } : {}, signal: ctx.signal, ...withTraceContext(ctx.traceContext) },
      );
      return { count: impact.affectedCount + impact.pinnedCount, ids: impact.impacted.map((i) => i.entityId) };
    } catch (err) {
      if (err instanceof ConnectError && err.code === Code.NotFound) return { count: 0, ids: [] };
      throw dependencyUnavailable("graph", "the graph service cannot tell whether other entities depend on this one; retry, or delete with force", err);
    }
  };
  log.info({ graph: graphUrl }, "delete protection: DeleteEntity asks graph for dependents");
  return { lookup, close: () => sessions.abort() };
}
