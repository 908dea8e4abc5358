import { test, describe, beforeAll, afterAll } from "vitest";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import type { JsonObject, MessageInitShape } from "@bufbuild/protobuf";
import { ContentService, type RenderTemplateRequestSchema } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";
import { EntityType, Permission, Visibility } from "@promptcraft/proto/promptcraft/content/v1/resources_pb";
import { badFields, ContentHarness, failure, NOT_FOUND, ok, PROTOCOLS, type Outcome, type TestUser } from "./content-e2e-helpers.js";

/** ContentService.RenderTemplate over gRPC and Connect: versions and labels, the template language, strict and lenient, limits, access. */

const h = new ContentHarness();
beforeAll(() => h.start());
afterAll(() => h.close());

const M = ContentService.method;
const NOT_A_TEMPLATE = { code: "FAILED_PRECONDITION", reason: "NOT_A_TEMPLATE" };
const SYNTAX = { code: "FAILED_PRECONDITION", reason: "TEMPLATE_SYNTAX" };
const MISSING = { code: "FAILED_PRECONDITION", reason: "TEMPLATE_VARIABLES_MISSING" };

type RenderRequest = MessageInitShape<typeof RenderTemplateRequestSchema>;

/** The metadata of a failed outcome, after checking its code and reason. */
function failedWith<O>(outcome: Outcome<O>, expected: { code: string; reason: string }): Record<string, string> {
  assert.deepEqual(failure(outcome), expected);
  assert.ok(!outcome.ok);
  return outcome.metadata;
}

for (const protocol of PROTOCOLS) {
  describe(`RenderTemplate over ${protocol}`, () => {
    const createTemplate = async (user: TestUser, content: JsonObject, extra: { visibility?: Visibility; type?: EntityType } = {}) =>
      ok(await h.call(protocol, M.createEntity, { entity: { type: extra.type ?? EntityType.TEMPLATE, title: "t", content, visibility: extra.visibility } }, user.token));
    const render = (user: { token: string }, request: RenderRequest) => h.call(protocol, M.renderTemplate, request, user.token);

    test("renders the current version, a version, a label and `latest`; answers which version and hash; writes nothing", async () => {
      const t = await h.tenantWith(["editor"]);
      const editor = t.users[0]!;
      const v1 = await createTemplate(editor, { template: "Hello {{name}}" });
      ok(await h.call(protocol, M.setLabel, { entityId: v1.id, label: "staging", version: 1 }, editor.token));
      const v2 = ok(
        await h.call(
          protocol,
          M.updateEntity,
          {
            entity: {
              id: v1.id,
              content: {
                template: "Hi {{ name }} ({{user.address.city}}), tone {{tone}}; cfg {{cfg}}; n={{n}}; \\{{name}} stays",
                variables: [
                  { name: "name", required: true },
                  { name: "tone", description: "how to speak", default: "friendly" },
                ],
              },
            },
            updateMask: { paths: ["content"] },
          },
          editor.token,
        ),
      );
      const before = await h.events(t.tenantId, v1.id);
      const variables = { name: "Ada", user: { address: { city: "London" } }, cfg: { a: 1, b: [true, null, "x"] }, n: 2.5, unused: "u", alsoUnused: 0 };

      const current = ok(await render(editor, { entityId: v1.id, variables }));
      assert.equal(current.text, 'Hi Ada (London), tone friendly; cfg {"a":1,"b":[true,null,"x"]}; n=2.5; {{name}} stays');
      assert.equal(current.entityId, v1.id);
      assert.equal(current.version, 2);
      assert.equal(current.contentHash, v2.contentHash);
      assert.deepEqual(current.missingVariables, []);
      assert.deepEqual(current.unusedVariables, ["alsoUnused", "unused"]);
      assert.equal(ok(await render(editor, { entityId: v1.id, label: "latest", variables })).version, 2);
      assert.equal(ok(await render(editor, { entityId: v1.id, variables: { ...variables, tone: "dry" } })).text.includes("tone dry;"), true, "a given value replaces the default");

      for (const selector of [{ version: 1 }, { label: "staging" }]) {
        const first = ok(await render(editor, { entityId: v1.id, ...selector, variables: { name: "Ada" } }));
        assert.equal(first.text, "Hello Ada");
        assert.equal(first.version, 1);
        assert.equal(first.contentHash, v1.contentHash);
      }

      // Read-only: no event, no version, no etag change.
      assert.deepEqual(await h.events(t.tenantId, v1.id), before);
      const after = ok(await h.call(protocol, M.getEntity, { entityId: v1.id }, editor.token));
      assert.equal(after.currentVersion, 2);
      assert.equal(after.etag, v2.etag);
    });

    test("lenient rendering leaves placeholders as written and lists them; strict fails naming them; `required` fails both", async () => {
      const t = await h.tenantWith(["editor"]);
      const editor = t.users[0]!;
      const template = await createTemplate(editor, {
        template: "{{ b }} {{a}} {{user.email}} {{b}} {{user.name}} {{with_default}}",
        variables: [{ name: "with_default", default: 7 }, { name: "user", required: true }],
      });
      const lenient = ok(await render(editor, { entityId: template.id, variables: { user: { name: "Grace" }, x: 1 } }));
      assert.equal(lenient.text, "{{ b }} {{a}} {{user.email}} {{b}} Grace 7");
      assert.deepEqual(lenient.missingVariables, ["b", "a", "user.email"]);
      assert.deepEqual(lenient.unusedVariables, ["x"]);

      const strict = await render(editor, { entityId: template.id, strict: true, variables: { user: { name: "Grace" } } });
      assert.deepEqual(failedWith(strict, MISSING), { missing_variables: "b,a,user.email", missing_count: "3" });
      const complete = ok(await render(editor, { entityId: template.id, strict: true, variables: { a: "A", b: "B", user: { email: "e", name: "n" } } }));
      assert.equal(complete.text, "B A e B n 7");
      assert.deepEqual(complete.missingVariables, []);

      // `user` is declared required: without it lenient rendering fails too, naming its placeholders.
      const required = await render(editor, { entityId: template.id, variables: { a: "A", b: "B" } });
      assert.deepEqual(failedWith(required, MISSING), { missing_variables: "user.email,user.name", missing_count: "2" });
    });

    test("not a template, a template without text, a syntax error, and a text past 2 MiB are refused", async () => {
      const t = await h.tenantWith(["editor"]);
      const editor = t.users[0]!;
      const context = await createTemplate(editor, { template: "{{a}}" }, { type: EntityType.CONTEXT });
      failedWith(await render(editor, { entityId: context.id }), NOT_A_TEMPLATE);
      const textless = await createTemplate(editor, { text: "{{a}}" });
      failedWith(await render(editor, { entityId: textless.id }), NOT_A_TEMPLATE);
      const numeric = await createTemplate(editor, { template: 42 });
      failedWith(await render(editor, { entityId: numeric.id }), NOT_A_TEMPLATE);

      const syntax = { code: "FAILED_PRECONDITION", reason: "TEMPLATE_SYNTAX" };
      const unclosed = await createTemplate(editor, { template: "line one\nsay {{name" });
      assert.deepEqual(failedWith(await render(editor, { entityId: unclosed.id, variables: { name: "x" } }), syntax), { line: "2", column: "5" });
      const empty = await createTemplate(editor, { template: "{{ }}" });
      assert.deepEqual(failedWith(await render(editor, { entityId: empty.id }), syntax), { line: "1", column: "1" });
      const dots = await createTemplate(editor, { template: "ok {{a..b}}" });
      assert.deepEqual(failedWith(await render(editor, { entityId: dots.id }), syntax), { line: "1", column: "4" });

      // 1 MiB repeated three times: the request can fix it, so INVALID_ARGUMENT on `variables`.
      const thrice = await createTemplate(editor, { template: "{{x}}{{x}}{{x}}" });
      const tooLarge = await render(editor, { entityId: thrice.id, variables: { x: "y".repeat(1024 * 1024) } });
      assert.deepEqual(failedWith(tooLarge, { code: "INVALID_ARGUMENT", reason: "CONTENT_TOO_LARGE" }), {
        limit_bytes: String(2 * 1024 * 1024),
        size_bytes: String(3 * 1024 * 1024),
      });
      assert.deepEqual(badFields(tooLarge), ["variables"]);
      assert.equal(ok(await render(editor, { entityId: thrice.id, variables: { x: "y".repeat(512 * 1024) } })).text.length, 3 * 512 * 1024);
    });

    test("bad input is INVALID_ARGUMENT naming the field; unknown versions and labels are NOT_FOUND", async () => {
      const t = await h.tenantWith(["editor"]);
      const editor = t.users[0]!;
      const template = await createTemplate(editor, { template: "{{a}}" });
      const bad = async (request: RenderRequest, field: string) => {
        const outcome = await render(editor, request);
        assert.equal(failure(outcome).code, "INVALID_ARGUMENT", JSON.stringify(request));
        assert.deepEqual(badFields(outcome), [field]);
      };
      await bad({ entityId: "nope" }, "entity_id");
      await bad({ entityId: "" }, "entity_id");
      await bad({ entityId: template.id, version: 0 }, "version");
      await bad({ entityId: template.id, version: -1 }, "version");
      await bad({ entityId: template.id, label: "Not A Label" }, "label");
      await bad({ entityId: template.id, label: "" }, "label");
      // version and label exclude each other: a rule of the whole message (empty field path).
      await bad({ entityId: template.id, version: 1, label: "latest" }, "");

      const missing = async (request: RenderRequest, metadata: Record<string, string>) => {
        const outcome = await render(editor, request);
        const found = failedWith(outcome, NOT_FOUND);
        for (const [k, v] of Object.entries(metadata)) assert.equal(found[k], v);
      };
      await missing({ entityId: template.id, version: 2 }, { resource_type: "entity_version", version: "2" });
      await missing({ entityId: template.id, label: "staging" }, { resource_type: "label", label: "staging" });
      await missing({ entityId: randomUUID() }, { resource_type: "entity" });
      assert.deepEqual(failure(await h.call(protocol, M.renderTemplate, { entityId: template.id })), { code: "UNAUTHENTICATED", reason: "CREDENTIALS_MISSING" });
    });

    test("access: viewers with view render; without view or from another tenant it is NOT_FOUND; deleted templates still render", async () => {
      const t = await h.tenantWith(["owner", "editor", "editor", "viewer", "viewer"]);
      const [owner, author, otherEditor, viewer, sharedViewer] = t.users;
      const other = await h.tenantWith(["owner"]);
      const content = { template: "Dear {{who}}" };
      const priv = await createTemplate(author!, content);
      const open = await createTemplate(author!, content, { visibility: Visibility.TENANT });
      const variables = { who: "reader" };

      const rendered = async (user: { token: string }, entityId: string) => {
        const outcome = await render(user, { entityId, variables });
        return outcome.ok ? outcome.res.text : failure(outcome);
      };
      assert.equal(await rendered(author!, priv.id), "Dear reader");
      assert.equal(await rendered(owner!, priv.id), "Dear reader");
      assert.deepEqual(await rendered(otherEditor!, priv.id), NOT_FOUND);
      assert.deepEqual(await rendered(viewer!, priv.id), NOT_FOUND);
      assert.deepEqual(await rendered(other.users[0]!, priv.id), NOT_FOUND);
      assert.equal(await rendered(viewer!, open.id), "Dear reader");
      assert.equal(await rendered(otherEditor!, open.id), "Dear reader");
      assert.deepEqual(await rendered(other.users[0]!, open.id), NOT_FOUND, "the owner of another tenant sees nothing");

      // A share gives view on the private template; an API key renders by its role.
      ok(await h.call(protocol, M.grantShare, { entityId: priv.id, share: { grantee: { case: "userId", value: sharedViewer!.id }, permission: Permission.VIEW } }, author!.token));
      assert.equal(await rendered(sharedViewer!, priv.id), "Dear reader");
      const viewerKey = await h.apiKey(owner!.token, "viewer");
      assert.equal(await rendered({ token: viewerKey }, open.id), "Dear reader");
      assert.deepEqual(await rendered({ token: viewerKey }, priv.id), NOT_FOUND);

      // Soft-deleted: rendering reads like GetEntity, which still returns it; access is unchanged.
      ok(await h.call(protocol, M.deleteEntity, { entityId: open.id }, author!.token));
      assert.equal(await rendered(viewer!, open.id), "Dear reader");
      assert.deepEqual(await rendered(other.users[0]!, open.id), NOT_FOUND);
    });

    test("a template with a partial needs the graph service: unreachable, it is UNAVAILABLE naming graph; templates without partials do not call it", async () => {
      const t = await h.tenantWith(["editor"]);
      const editor = t.users[0]!;
      const plain = await createTemplate(editor, { template: "no partial here, {{x}}" });
      const composed = await createTemplate(editor, { template: "Intro {{> tone}} then {{x}}" });
      assert.equal(ok(await render(editor, { entityId: plain.id, variables: { x: "1" } })).text, "no partial here, 1");
      const down = await render(editor, { entityId: composed.id, variables: { x: "1" } });
      assert.deepEqual(failure(down), { code: "UNAVAILABLE", reason: "DEPENDENCY_UNAVAILABLE" });
      assert.ok(!down.ok);
      assert.equal(down.metadata.dependency, "graph");
      assert.deepEqual(failedWith(await render(editor, { entityId: (await createTemplate(editor, { template: "{{> Not-A-Name}}" })).id }), SYNTAX), {
        line: "1",
        column: "1",
      });
    });
  });
}
