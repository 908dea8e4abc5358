import { Code, ConnectError, createServiceClient, Http2SessionManager, withTraceContext, type Client } from "@promptcraft/client";
import { dependencyUnavailable, type CallContext, type Logger } from "@promptcraft/platform";
import { GraphService } from "@promptcraft/proto/promptcraft/graph/v1/graph_service_pb";
import { RelationshipType, ResolutionState } from "@promptcraft/proto/promptcraft/graph/v1/resources_pb";
import type { DependenciesOf } from "./domain/compose.js";
import type { Dependents, DependentsOf } from "./domain/entities.js";

/** Longest wait for graph's answer before the call fails UNAVAILABLE (graph is local and answers in milliseconds). */
const GRAPH_TIMEOUT_MS = 3000;
/** How many dependents a refusal names. */
const NAMED_DEPENDENTS = 5;

/**
 * What content asks the graph service (GRAPH_URL), always **with the caller's own credentials**
 * (the call's bearer token), so graph applies the caller's access:
 * - `dependentsOf`, DeleteEntity's guard: `AnalyzeImpact` at depth 1 over depends_on and part_of —
 *   only dependents the caller can see count;
 * - `dependenciesOf`, RenderTemplate's composition: `ResolveDependencies` over depends_on and part_of.
 * NOT_FOUND from graph (an entity it does not know) means none. Graph unreachable or failing:
 * UNAVAILABLE (DEPENDENCY_UNAVAILABLE, `dependency: graph`, RetryInfo).
 */
export interface GraphLookups {
  dependentsOf: (ctx: CallContext) => DependentsOf;
  dependenciesOf: (ctx: CallContext) => DependenciesOf;
}

/** The lookups, or undefined (delete protection and composition off) when GRAPH_URL is not set, which start logs. */
export function graphLookups(graphUrl: string | undefined, log: Logger): { lookups: GraphLookups | undefined; close: () => void } {
  if (graphUrl === undefined) {
    log.warn("graph off: GRAPH_URL is not set (DeleteEntity will not check for dependents, templates with {{> partials}} will not render)");
    return { lookups: undefined, close: () => undefined };
  }
  const sessions = new Http2SessionManager(graphUrl, { idleConnectionTimeoutMs: 30_000 });
  const graph: Client<typeof GraphService> = createServiceClient(GraphService, graphUrl, { sessionManager: sessions, timeoutMs: GRAPH_TIMEOUT_MS });
  const options = (ctx: CallContext) => {
    const authorization = ctx.header("authorization");
    return { headers: authorization ? { authorization } : {}, signal: ctx.signal, ...withTraceContext(ctx.traceContext) };
  };
  const unavailable = (err: unknown, what: string) => dependencyUnavailable("graph", `the graph service cannot ${what}; retry${what.startsWith("tell") ? ", or delete with force" : ""}`, err);
  const lookups: GraphLookups = {
    dependentsOf: (ctx) => async (entityId): Promise<Dependents> => {
      try {
        const impact = await graph.analyzeImpact({ entityId, maxDepth: 1, maxResults: NAMED_DEPENDENTS }, options(ctx));
        return { count: impact.affectedCount + impact.pinnedCount, ids: impact.impacted.map((i) => i.entityId) };
      } catch (err) {
        if (err instanceof ConnectError && err.code === Code.NotFound) return { count: 0, ids: [] };
        throw unavailable(err, "tell whether other entities depend on this one");
      }
    },
    dependenciesOf: (ctx) => async (entityId) => {
      try {
        const resolved = await graph.resolveDependencies({ entityId, types: [RelationshipType.DEPENDS_ON, RelationshipType.PART_OF] }, options(ctx));
        return resolved.dependencies.map((d) => ({
          dependentEntityId: d.dependentEntityId,
          entityId: d.entityId,
          version: d.state === ResolutionState.RESOLVED ? d.version : undefined,
        }));
      } catch (err) {
        if (err instanceof ConnectError && err.code === Code.NotFound) return [];
        throw unavailable(err, "resolve the template's dependencies");
      }
    },
  };
  log.info({ graph: graphUrl }, "graph lookups on: DeleteEntity asks for dependents, RenderTemplate resolves {{> partials}}");
  return { lookups, close: () => sessions.abort() };
}
