import type { MessageInitShape } from "@bufbuild/protobuf";
import { ConnectError } from "@promptcraft/client";
import { onBehalfOf, type CallContext, type Logger } from "@promptcraft/platform";
import type { EntitySchema, NearDuplicateCheckSchema } from "@promptcraft/proto/promptcraft/content/v1/resources_pb";
import type { ContentState } from "../index.js";

/**
 * How long a save waits for search's near-duplicate answer. Short: the warning is a courtesy, and
 * the save (already committed) must not be held up by a slow or absent search service.
 */
export const NEAR_DUPLICATE_CHECK_MS = 1000;
/** Most near duplicates a save names (the contract's "at most 10"). */
const NEAR_DUPLICATE_LIMIT = 10;

/**
 * The near-duplicate warning of a save: search's FindNearDuplicates for the saved text, on behalf of
 * the caller (search names only what the caller can see), the saved entity left out. Never throws:
 * when search does not answer in time or refuses, the check is `checked: false` and a note is logged.
 */
export async function nearDuplicateCheck(state: ContentState, ctx: CallContext, saved: MessageInitShape<typeof EntitySchema>, log: Logger): Promise<MessageInitShape<typeof NearDuplicateCheckSchema>> {
  try {
    const answer = await state.search.client.findNearDuplicates(
      { title: saved.title, description: saved.description, tags: saved.tags, content: saved.content, excludeEntityId: saved.id, pageSize: NEAR_DUPLICATE_LIMIT },
      onBehalfOf(ctx, NEAR_DUPLICATE_CHECK_MS),
    );
    return {
      checked: true,
      model: answer.model,
      duplicates: answer.results.map((r) => ({ entityId: r.entityId, type: r.entityType, title: r.title, similarity: r.semanticScore ?? r.score })),
    };
  } catch (err) {
    const e = ConnectError.from(err);
    log.info({ entityId: saved.id, code: e.code, err: e.rawMessage, requestId: ctx.requestId }, "near-duplicate check skipped: search did not answer");
    return { checked: false };
  }
}
