import type { DescMethodUnary, DescMessage, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { setTimeout as sleep } from "node:timers/promises";
import { loadConfig, startService, type RunningService } from "@promptcraft/platform";
import { searchService } from "@promptcraft/search";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { EntityType, Visibility } from "@promptcraft/proto/promptcraft/content/v1/resources_pb";
import { EmbeddingState } from "@promptcraft/proto/promptcraft/search/v1/resources_pb";
import { SearchService } from "@promptcraft/proto/promptcraft/search/v1/search_service_pb";
import { ContentHarness, type TestUser } from "./content-e2e-helpers.js";
import { ok, unaryCall, type Outcome, type Protocol } from "./rpc-outcomes.js";
import { testServiceEnv } from "./identity-e2e-helpers.js";

export { badFields, failure, ok, PROTOCOLS, type Outcome, type Protocol } from "./rpc-outcomes.js";

/**
 * Identity, content and search on free ports over the test database. Entities are written through
 * content's RPCs, so that search learns of them the production way: from the event log, through its
 * pipeline (worker and log poll at short intervals here).
 */
export class SearchHarness extends ContentHarness {
  search!: RunningService;

  /** Starts identity, content and search; `searchEnv` overrides search's configuration. */
  override async start(searchEnv: Record<string, string> = {}): Promise<void> {
    await super.start();
    await this.startSearch(searchEnv);
  }

  /** Stops search and starts it again with `searchEnv` (a new configuration over the same data). */
  async restartSearch(searchEnv: Record<string, string> = {}): Promise<void> {
    await this.search.close();
    await this.startSearch(searchEnv);
  }

  private async startSearch(searchEnv: Record<string, string>): Promise<void> {
    this.search = await startService(
      searchService,
      loadConfig(searchService.config, {
        ...testServiceEnv(),
        IDENTITY_URL: `http://127.0.0.1:${this.identity.grpcPort}`,
        EMBEDDING_WORKER_INTERVAL_MS: "50",
        EMBEDDING_EVENT_POLL_MS: "50",
        LOG_LEVEL: process.env.SEARCH_TEST_LOG ?? "silent",
        ...searchEnv,
      }),
    );
  }

  override async close(): Promise<void> {
    await this.search?.close();
    await super.close();
  }

  /** One unary SearchService call. */
  searchCall<I extends DescMessage, O extends DescMessage>(
    protocol: Protocol,
    method: DescMethodUnary<I, O>,
    request: MessageInitShape<I>,
    bearer: string,
  ): Promise<Outcome<MessageShape<O>>> {
    return unaryCall(SearchService, this.search, protocol, method, request, { authorization: `Bearer ${bearer}` });
  }

  /** Creates an entity through content (tenant-visible unless said otherwise); returns its id. */
  async createEntity(
    owner: TestUser,
    fields: { title: string; description?: string; tags?: string[]; text?: string; visibility?: Visibility; type?: EntityType },
  ): Promise<string> {
    const created = ok(
      await this.call("grpc", ContentService.method.createEntity, {
        entity: {
          type: fields.type ?? EntityType.CONTEXT,
          title: fields.title,
          description: fields.description ?? "",
          tags: fields.tags ?? [],
          content: fields.text ? { text: fields.text } : undefined,
          visibility: fields.visibility ?? Visibility.TENANT,
        },
      }, owner.token),
    );
    return created.id;
  }

  /**
   * Waits until the pipeline has embedded `version` (default: any) of each entity with the default
   * model, as GetEmbeddingStatus reports it.
   */
  async waitEmbedded(who: TestUser, entityIds: string[], version?: number): Promise<void> {
    const deadline = Date.now() + 60_000;
    for (const entityId of entityIds) {
      for (;;) {
        const status = ok(await this.searchCall("grpc", SearchService.method.getEmbeddingStatus, { entityId, version }, who.token));
        if (status.embeddings.some((e) => e.state === EmbeddingState.COMPLETED)) break;
        if (Date.now() > deadline) throw new Error(`entity ${entityId} was not embedded in time: ${JSON.stringify(status.embeddings.map((e) => [e.state, e.lastError]))}`);
        await sleep(50);
      }
    }
  }
}
