import type { MessageInitShape } from "@bufbuild/protobuf";
import { EntityStatus, EntityType } from "@promptcraft/proto/promptcraft/content/v1/resources_pb";
import { dbTimeFromTimestamp, invertEnumMap, principalFromName, timestampFromDb } from "@promptcraft/platform";
import { sqlTime } from "@promptcraft/db";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { SearchMode, type SearchResultSchema } from "@promptcraft/proto/promptcraft/search/v1/resources_pb";
import type { SearchFilters, SearchHit, SearchMode as DomainMode } from "../domain/search.js";

type StoreType = "context" | "template" | "workflow" | "library";

export const TYPE_TO_PROTO: Record<StoreType, EntityType> = {
  context: EntityType.CONTEXT,
  template: EntityType.TEMPLATE,
  workflow: EntityType.WORKFLOW,
  library: EntityType.LIBRARY,
};
const TYPE_FROM_PROTO = invertEnumMap(TYPE_TO_PROTO);

/** Entity types of the contract as stored (the proto rules already refused unspecified and undefined values). */
export function typesOf(types: readonly EntityType[]): string[] {
  return types.flatMap((t) => TYPE_FROM_PROTO[t] ?? []);
}

/** Statuses as stored: ARCHIVED also covers the schema's `deprecated` (content shows it as archived). */
export function statusesOf(statuses: readonly EntityStatus[]): string[] {
  return statuses.flatMap((s) =>
    s === EntityStatus.DRAFT ? ["draft"] : s === EntityStatus.PUBLISHED ? ["published"] : s === EntityStatus.ARCHIVED ? ["archived", "deprecated"] : [],
  );
}

export const MODE_TO_PROTO: Record<DomainMode, SearchMode> = {
  semantic: SearchMode.SEMANTIC,
  full_text: SearchMode.FULL_TEXT,
  hybrid: SearchMode.HYBRID,
};
const MODE_FROM_PROTO = invertEnumMap(MODE_TO_PROTO);

/** The mode asked for; unspecified means hybrid. */
export function modeOf(mode: SearchMode): DomainMode {
  return MODE_FROM_PROTO[mode] ?? "hybrid";
}

/** An owner filter: `<uuid>` or `api_key:<uuid>` (the proto pattern checked it), or none. */
export function ownerOf(ownerId: string): SearchFilters["owner"] {
  if (ownerId === "") return null;
  return principalFromName(ownerId);
}

/** A request time bound as SQL text, or null. */
export function timeBound(ts: Timestamp | undefined, field: string): string | null {
  return ts ? sqlTime(dbTimeFromTimestamp(ts, field)) : null;
}

export function resultToProto(h: SearchHit): MessageInitShape<typeof SearchResultSchema> {
  return {
    entityId: h.entityId,
    version: h.version,
    entityType: TYPE_TO_PROTO[h.entityType as StoreType],
    title: h.title,
    score: h.score,
    semanticScore: h.semanticScore,
    textScore: h.textScore,
    snippet: h.snippet,
    tags: h.tags,
    updateTime: timestampFromDb(h.updateTime),
  };
}
