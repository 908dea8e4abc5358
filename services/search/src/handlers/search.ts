import type { UsageReporter } from "@promptcraft/client";
import { callerOf, type ServiceHandlers } from "@promptcraft/platform";
import type { SearchService } from "@promptcraft/proto/promptcraft/search/v1/search_service_pb";
import { findNearDuplicates, findSimilarEntities, searchEntities, type SearchDeps } from "../domain/search.js";
import { MODE_TO_PROTO, modeOf, ownerOf, resultToProto, statusesOf, timeBound, typesOf } from "./convert.js";
import { reportSearch } from "./usage.js";

/** SearchEntities, FindSimilarEntities, FindNearDuplicates: proto ↔ domain; each answered call is reported as `search` usage. */
export function searchHandlers(deps: SearchDeps, usage: UsageReporter | undefined): Pick<ServiceHandlers<typeof SearchService>, "searchEntities" | "findSimilarEntities" | "findNearDuplicates"> {
  return {
    async searchEntities(req, ctx) {
      const started = performance.now();
      const out = await searchEntities(deps, callerOf(ctx), {
        query: req.query,
        mode: modeOf(req.mode),
        model: req.model,
        semanticWeight: req.semanticWeight ?? 0.5,
        minScore: req.minScore,
        pageSize: req.pageSize > 0 ? req.pageSize : 20,
        pageToken: req.pageToken,
        filters: {
          types: typesOf(req.types),
          tags: req.tags,
          statuses: statusesOf(req.statuses),
          labels: req.labels,
          owner: ownerOf(req.ownerId),
          updatedAfter: timeBound(req.updateTimeAfter, "update_time_after"),
          updatedBefore: timeBound(req.updateTimeBefore, "update_time_before"),
        },
      });
      reportSearch(usage, ctx, { model: out.model, latencyMs: performance.now() - started, mode: out.mode, results: out.hits.length });
      return {
        results: out.hits.map(resultToProto),
        nextPageToken: out.nextPageToken,
        mode: MODE_TO_PROTO[out.mode],
        model: out.model,
        unembeddedCount: out.unembeddedCount,
      };
    },

    async findSimilarEntities(req, ctx) {
      const started = performance.now();
      const out = await findSimilarEntities(deps, callerOf(ctx), {
        entityId: req.entityId.toLowerCase(),
        version: req.version ?? null,
        types: typesOf(req.types),
        model: req.model,
        minScore: req.minScore,
        pageSize: req.pageSize > 0 ? req.pageSize : 10,
      });
      reportSearch(usage, ctx, { model: out.model, latencyMs: performance.now() - started, mode: "similar", results: out.hits.length, entityId: req.entityId.toLowerCase() });
      return { results: out.hits.map(resultToProto), model: out.model };
    },

    async findNearDuplicates(req, ctx) {
      const started = performance.now();
      const out = await findNearDuplicates(deps, callerOf(ctx), {
        text: { title: req.title, description: req.description, tags: req.tags, content: req.content ?? {} },
        excludeEntityId: req.excludeEntityId === "" ? null : req.excludeEntityId.toLowerCase(),
        minSimilarity: req.minSimilarity > 0 ? req.minSimilarity : 0.9,
        model: req.model,
        pageSize: req.pageSize > 0 ? req.pageSize : 5,
      });
      reportSearch(usage, ctx, { model: out.model, latencyMs: performance.now() - started, mode: "near_duplicates", results: out.hits.length });
      return { results: out.hits.map(resultToProto), model: out.model };
    },
  };
}
