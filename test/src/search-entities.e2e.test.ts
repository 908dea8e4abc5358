import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { ContentService } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { EntityStatus, EntityType, Permission, Visibility } from "@promptcraft/proto/promptcraft/content/v1/resources_pb";
import { SearchMode } from "@promptcraft/proto/promptcraft/search/v1/resources_pb";
import { SearchService } from "@promptcraft/proto/promptcraft/search/v1/search_service_pb";
import { badFields, failure, ok, PROTOCOLS, SearchHarness } from "./search-e2e-helpers.js";

/**
 * SearchService.SearchEntities, FindSimilarEntities and FindNearDuplicates over gRPC and Connect:
 * entities written through content are found by all three modes without any manual step; access
 * applies inside the query (private entities, shares, full pages); bad input; tenants apart.
 */

const h = new SearchHarness();
beforeAll(() => h.start());
afterAll(() => h.close());

const S = SearchService.method;
const C = ContentService.method;

for (const protocol of PROTOCOLS) {
  describe(`search over ${protocol}`, () => {
    test("a new entity and a new version are found by semantic, full-text and hybrid search, naming the version matched", async () => {
      const t = await h.tenantWith(["editor"]);
      const editor = t.users[0]!;
      const contract = await h.createEntity(editor, { title: "Contract summariser", description: "Summarises legal contracts clause by clause", tags: ["legal"] });
      const recipe = await h.createEntity(editor, { title: "Banana bread", description: "A recipe with walnuts", text: "Bake for fifty minutes" });
      await h.waitEmbedded(editor, [contract, recipe]);

      const semantic = ok(await h.searchCall(protocol, S.searchEntities, { query: "summarise a legal contract", mode: SearchMode.SEMANTIC }, editor.token));
      assert.equal(semantic.mode, SearchMode.SEMANTIC);
      assert.equal(semantic.model, "local-hash-384");
      assert.equal(semantic.results[0]!.entityId, contract);
      assert.equal(semantic.results[0]!.version, 1);
      assert.ok(semantic.results[0]!.score > semantic.results[1]!.score);
      assert.equal(semantic.results[0]!.score, Math.max(0, semantic.results[0]!.semanticScore!), "semantic score = max(0, cosine)");
      assert.equal(semantic.results[0]!.textScore, undefined);
      assert.equal(semantic.results[0]!.snippet, "");
      assert.equal(semantic.unembeddedCount, 0);

      const text = ok(await h.searchCall(protocol, S.searchEntities, { query: "walnuts", mode: SearchMode.FULL_TEXT }, editor.token));
      assert.deepEqual(text.results.map((r) => r.entityId), [recipe]);
      assert.equal(text.model, "");
      assert.match(text.results[0]!.snippet, /\*\*walnuts\*\*/);
      assert.ok(text.results[0]!.score > 0 && text.results[0]!.score < 1);
      assert.equal(text.results[0]!.entityType, EntityType.CONTEXT);
      assert.equal(text.results[0]!.title, "Banana bread");

      const hybrid = ok(await h.searchCall(protocol, S.searchEntities, { query: "legal contracts" }, editor.token));
      assert.equal(hybrid.mode, SearchMode.HYBRID, "hybrid is the default");
      assert.equal(hybrid.results[0]!.entityId, contract);
      assert.ok(Math.abs(hybrid.results[0]!.score - 1) < 1e-9, "first on both sides: fused score 1");
      assert.ok(hybrid.results[0]!.semanticScore !== undefined && hybrid.results[0]!.textScore !== undefined);

      // A new version: all three modes find the new text, at version 2.
      ok(await h.call(protocol, C.updateEntity, { entity: { id: recipe, description: "A recipe with pecans" }, updateMask: { paths: ["description"] } }, editor.token));
      const fresh = ok(await h.searchCall(protocol, S.searchEntities, { query: "pecans", mode: SearchMode.FULL_TEXT }, editor.token));
      assert.deepEqual(fresh.results.map((r) => [r.entityId, r.version]), [[recipe, 2]], "full text: immediately");
      await h.waitEmbedded(editor, [recipe], 2);
      const semantic2 = ok(await h.searchCall(protocol, S.searchEntities, { query: "banana bread recipe pecans", mode: SearchMode.SEMANTIC }, editor.token));
      assert.deepEqual([semantic2.results[0]!.entityId, semantic2.results[0]!.version], [recipe, 2]);
      const old = ok(await h.searchCall(protocol, S.searchEntities, { query: "walnuts", mode: SearchMode.FULL_TEXT }, editor.token));
      assert.deepEqual(old.results, [], "the old text is not current any more");

      // Deleted: gone from every mode; undeleted: back.
      ok(await h.call(protocol, C.deleteEntity, { entityId: contract }, editor.token));
      for (const mode of [SearchMode.SEMANTIC, SearchMode.FULL_TEXT, SearchMode.HYBRID]) {
        const r = ok(await h.searchCall(protocol, S.searchEntities, { query: "legal contracts", mode }, editor.token));
        assert.ok(!r.results.some((x) => x.entityId === contract), `deleted: not in ${SearchMode[mode]}`);
      }
      ok(await h.call(protocol, C.undeleteEntity, { entityId: contract }, editor.token));
      const back = ok(await h.searchCall(protocol, S.searchEntities, { query: "legal contracts", mode: SearchMode.SEMANTIC }, editor.token));
      assert.equal(back.results[0]!.entityId, contract);
    });

    test("filters: type, tags, status, label present, owner, update time", async () => {
      const t = await h.tenantWith(["editor", "editor"]);
      const [a, b] = t.users;
      const prompt = await h.createEntity(a!, { title: "Support reply template", tags: ["support", "email"], type: EntityType.TEMPLATE });
      const other = await h.createEntity(b!, { title: "Support escalation notes", tags: ["support"] });
      ok(await h.call(protocol, C.setLabel, { entityId: prompt, label: "beta", version: 1 }, a!.token));
      ok(await h.call(protocol, C.updateEntity, { entity: { id: other, status: EntityStatus.PUBLISHED }, updateMask: { paths: ["status"] } }, b!.token));
      await h.waitEmbedded(a!, [prompt, other]);
      const ids = async (req: Record<string, unknown>) =>
        ok(await h.searchCall(protocol, S.searchEntities, { query: "support", mode: SearchMode.FULL_TEXT, ...req }, a!.token)).results.map((r) => r.entityId).sort();
      assert.deepEqual(await ids({}), [prompt, other].sort());
      assert.deepEqual(await ids({ types: [EntityType.TEMPLATE] }), [prompt]);
      assert.deepEqual(await ids({ tags: ["email"] }), [prompt]);
      assert.deepEqual(await ids({ statuses: [EntityStatus.PUBLISHED] }), [other]);
      assert.deepEqual(await ids({ labels: ["beta"] }), [prompt]);
      assert.deepEqual(await ids({ ownerId: b!.id }), [other]);
      assert.deepEqual(await ids({ updateTimeAfter: { seconds: BigInt(Math.floor(Date.now() / 1000) + 3600), nanos: 0 } }), []);
      assert.deepEqual(await ids({ updateTimeBefore: { seconds: BigInt(Math.floor(Date.now() / 1000) + 3600), nanos: 0 } }), [prompt, other].sort());
      const semantic = ok(await h.searchCall(protocol, S.searchEntities, { query: "support", mode: SearchMode.SEMANTIC, tags: ["email"] }, a!.token));
      assert.deepEqual(semantic.results.map((r) => r.entityId), [prompt], "filters apply to the semantic side too");
    });

    test("access inside the query: private entities never appear to others, shares open them, and pages are full", async () => {
      const t = await h.tenantWith(["editor", "viewer"]);
      const [owner, viewer] = t.users;
      const hidden: string[] = [];
      // The best matches are private: filtering after ranking would leave the viewer's first page empty.
      for (let i = 0; i < 12; i++) hidden.push(await h.createEntity(owner!, { title: `quarterly revenue forecast ${i}`, description: "quarterly revenue forecast", visibility: Visibility.PRIVATE }));
      const visible: string[] = [];
      for (let i = 0; i < 7; i++) visible.push(await h.createEntity(owner!, { title: `revenue note ${i}`, description: "a note", text: "appendix: the quarterly revenue forecast, among many other unrelated topics and words" }));
      await h.waitEmbedded(owner!, [...hidden, ...visible]);

      for (const mode of [SearchMode.SEMANTIC, SearchMode.FULL_TEXT, SearchMode.HYBRID]) {
        const first = ok(await h.searchCall(protocol, S.searchEntities, { query: "quarterly revenue forecast", mode, pageSize: 5 }, viewer!.token));
        assert.equal(first.results.length, 5, `${SearchMode[mode]}: a full first page`);
        assert.ok(first.results.every((r) => visible.includes(r.entityId)), `${SearchMode[mode]}: nothing private`);
        assert.notEqual(first.nextPageToken, "");
        const second = ok(await h.searchCall(protocol, S.searchEntities, { query: "quarterly revenue forecast", mode, pageSize: 5, pageToken: first.nextPageToken }, viewer!.token));
        assert.equal(second.results.length, 2, `${SearchMode[mode]}: the rest`);
        assert.equal(second.nextPageToken, "");
        assert.deepEqual([...first.results, ...second.results].map((r) => r.entityId).sort(), [...visible].sort());
        const mine = ok(await h.searchCall(protocol, S.searchEntities, { query: "quarterly revenue forecast", mode, pageSize: 5 }, owner!.token));
        assert.ok(mine.results.every((r) => hidden.includes(r.entityId)), `${SearchMode[mode]}: the owner sees their private best matches first`);
      }
      // A share opens one private entity to the viewer; FindSimilarEntities respects access the same way.
      ok(await h.call(protocol, C.grantShare, { entityId: hidden[0]!, share: { grantee: { case: "userId", value: viewer!.id }, permission: Permission.VIEW } }, owner!.token));
      const shared = ok(await h.searchCall(protocol, S.searchEntities, { query: "quarterly revenue forecast", mode: SearchMode.SEMANTIC, pageSize: 3 }, viewer!.token));
      assert.equal(shared.results[0]!.entityId, hidden[0]);
      assert.ok(shared.results.slice(1).every((r) => visible.includes(r.entityId)));
      const similar = ok(await h.searchCall(protocol, S.findSimilarEntities, { entityId: hidden[0]!, pageSize: 20 }, viewer!.token));
      assert.equal(similar.results.length, 7, "the visible ones only, itself left out");
      assert.ok(similar.results.every((r) => visible.includes(r.entityId)));
      assert.deepEqual(failure(await h.searchCall(protocol, S.findSimilarEntities, { entityId: hidden[1]! }, viewer!.token)), { code: "NOT_FOUND", reason: "RESOURCE_NOT_FOUND" });

      // Another tenant sees none of it.
      const stranger = (await h.tenantWith(["owner"])).users[0]!;
      for (const mode of [SearchMode.SEMANTIC, SearchMode.FULL_TEXT, SearchMode.HYBRID]) {
        const r = ok(await h.searchCall(protocol, S.searchEntities, { query: "quarterly revenue forecast", mode }, stranger.token));
        assert.ok(!r.results.some((x) => [...hidden, ...visible].includes(x.entityId)), `${SearchMode[mode]}: no other tenant's entity`);
      }
      assert.deepEqual(failure(await h.searchCall(protocol, S.getEmbeddingStatus, { entityId: visible[0]! }, stranger.token)), { code: "NOT_FOUND", reason: "RESOURCE_NOT_FOUND" });
    });

    test("min_score; FindSimilarEntities and FindNearDuplicates", async () => {
      const t = await h.tenantWith(["editor"]);
      const editor = t.users[0]!;
      const original = await h.createEntity(editor, { title: "Customer onboarding checklist", description: "Steps to onboard a new enterprise customer", tags: ["onboarding"] });
      const copy = await h.createEntity(editor, { title: "Customer onboarding checklist (copy)", description: "Steps to onboard a new enterprise customer", tags: ["onboarding"] });
      const unrelated = await h.createEntity(editor, { title: "Kubernetes upgrade runbook", description: "Drain nodes one at a time" });
      await h.waitEmbedded(editor, [original, copy, unrelated]);

      const strict = ok(await h.searchCall(protocol, S.searchEntities, { query: "customer onboarding checklist", mode: SearchMode.SEMANTIC, minScore: 0.5 }, editor.token));
      assert.deepEqual(strict.results.map((r) => r.entityId).sort(), [original, copy].sort());
      assert.ok(strict.results.every((r) => r.score >= 0.5));
      const none = ok(await h.searchCall(protocol, S.searchEntities, { query: "customer onboarding checklist", mode: SearchMode.SEMANTIC, minScore: 0.999 }, editor.token));
      assert.deepEqual(none.results, [], "a threshold nothing meets: an empty page");

      const similar = ok(await h.searchCall(protocol, S.findSimilarEntities, { entityId: original }, editor.token));
      assert.equal(similar.results[0]!.entityId, copy);
      assert.ok(!similar.results.some((r) => r.entityId === original));
      assert.ok(similar.results[0]!.score > similar.results[1]!.score);

      const dupes = ok(
        await h.searchCall(protocol, S.findNearDuplicates, { title: "Customer onboarding checklist", description: "Steps to onboard a new enterprise customer", tags: ["onboarding"], excludeEntityId: original }, editor.token),
      );
      assert.deepEqual(dupes.results.map((r) => r.entityId), [copy], "above the default 0.9, the one being saved left out");
      assert.ok(dupes.results[0]!.score >= 0.9);
      const fresh = ok(await h.searchCall(protocol, S.findNearDuplicates, { title: "Completely different words here" }, editor.token));
      assert.deepEqual(fresh.results, []);
    });

    test("bad input: INVALID_ARGUMENT naming the field", async () => {
      const t = await h.tenantWith(["editor"]);
      const editor = t.users[0]!;
      const bad = async (method: Parameters<typeof h.searchCall>[1], req: Record<string, unknown>) => {
        const outcome = await h.searchCall(protocol, method, req, editor.token);
        assert.equal(failure(outcome).code, "INVALID_ARGUMENT", JSON.stringify(req, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v)));
        return { reason: failure(outcome).reason, fields: badFields(outcome) };
      };
      assert.deepEqual((await bad(S.searchEntities, { query: "" })).fields, ["query"]);
      assert.deepEqual((await bad(S.searchEntities, { query: "   " })).fields, ["query"]);
      assert.deepEqual((await bad(S.searchEntities, { query: "a\u0000b" })).fields, ["query"]);
      assert.deepEqual((await bad(S.searchEntities, { query: "x".repeat(4097) })).fields, ["query"]);
      assert.deepEqual(await bad(S.searchEntities, { query: "x", model: "no-such-model" }), { reason: "EMBEDDING_MODEL_UNKNOWN", fields: ["model"] });
      assert.deepEqual(await bad(S.searchEntities, { query: "x", pageToken: "garbage" }), { reason: "PAGE_TOKEN_INVALID", fields: ["page_token"] });
      assert.deepEqual((await bad(S.searchEntities, { query: "x", pageSize: 101 })).fields, ["page_size"]);
      assert.deepEqual((await bad(S.searchEntities, { query: "x", minScore: 1.5 })).fields, ["min_score"]);
      assert.deepEqual((await bad(S.searchEntities, { query: "x", ownerId: "someone" })).fields, ["owner_id"]);
      assert.deepEqual((await bad(S.searchEntities, { query: "x", labels: ["Not A Label"] })).fields, ["labels[0]"]);
      assert.deepEqual((await bad(S.findSimilarEntities, { entityId: "not-a-uuid" })).fields, ["entity_id"]);
      assert.deepEqual(await bad(S.findNearDuplicates, { title: "x", model: "nope" }), { reason: "EMBEDDING_MODEL_UNKNOWN", fields: ["model"] });
      assert.deepEqual((await bad(S.findNearDuplicates, { title: "x", content: { text: "y".repeat(100_001) } })).fields, ["content"]);
      // A page token of one query is refused for another.
      const many = [];
      for (let i = 0; i < 3; i++) many.push(await h.createEntity(editor, { title: `token test ${i}` }));
      const first = ok(await h.searchCall(protocol, S.searchEntities, { query: "token test", mode: SearchMode.FULL_TEXT, pageSize: 1 }, editor.token));
      assert.deepEqual((await bad(S.searchEntities, { query: "other", mode: SearchMode.FULL_TEXT, pageSize: 1, pageToken: first.nextPageToken })).fields, ["page_token"]);
    });
  });
}
