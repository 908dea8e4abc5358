import { test } from "vitest";
import assert from "node:assert/strict";
import { FailedPreconditionError, InvalidArgumentError, type AppError } from "@promptcraft/platform";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import { MAX_RENDERED_BYTES, parseTemplate, renderTemplate, type RenderOptions } from "./render.js";

const LENIENT: RenderOptions = { strict: false, maxBytes: MAX_RENDERED_BYTES };
const STRICT: RenderOptions = { strict: true, maxBytes: MAX_RENDERED_BYTES };

const render = (template: string, variables: Record<string, unknown> = {}, options = LENIENT, declared?: unknown) =>
  renderTemplate(declared === undefined ? { template } : { template, variables: declared }, variables, options);

/** The domain error `fn` throws, checked for class and reason; returns its metadata. */
function thrown(fn: () => unknown, type: new (...args: never[]) => AppError, reason: ErrorReason): Record<string, string> {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof type, `${String(e)} is a ${type.name}`);
    assert.equal(ErrorReason[e.reason], ErrorReason[reason]);
    return e.metadata;
  }
  assert.fail("expected an error");
}

const syntaxAt = (template: string) => thrown(() => parseTemplate(template), FailedPreconditionError, ErrorReason.TEMPLATE_SYNTAX);

test("parseTemplate: text and placeholders, spaces inside the braces, dotted paths", () => {
  assert.deepEqual(parseTemplate(""), []);
  assert.deepEqual(parseTemplate("no placeholders } }} {"), [{ kind: "text", text: "no placeholders } }} {" }]);
  assert.deepEqual(parseTemplate("Hi {{name}}, {{ user.first_name }}{{\tx-1 }}!"), [
    { kind: "text", text: "Hi " },
    { kind: "placeholder", name: "name", path: ["name"], source: "{{name}}" },
    { kind: "text", text: ", " },
    { kind: "placeholder", name: "user.first_name", path: ["user", "first_name"], source: "{{ user.first_name }}" },
    { kind: "placeholder", name: "x-1", path: ["x-1"], source: "{{\tx-1 }}" },
    { kind: "text", text: "!" },
  ]);
  assert.deepEqual(
    parseTemplate("{{ élève.2 }}").map((p) => p.kind === "placeholder" && p.path),
    [["élève", "2"]],
  );
  // A closing brace after the placeholder's is text.
  assert.deepEqual(parseTemplate("{{a}}}"), [
    { kind: "placeholder", name: "a", path: ["a"], source: "{{a}}" },
    { kind: "text", text: "}" },
  ]);
});

test("parseTemplate: \\{{ is a literal {{, \\\\{{ a backslash and a placeholder, other backslashes are text", () => {
  const texts = (template: string) => parseTemplate(template).map((p) => (p.kind === "text" ? p.text : p.kind === "partial" ? `<>${p.ref}>` : `<${p.name}>`)).join("");
  assert.equal(texts("\\{{name}}"), "{{name}}");
  assert.equal(texts("\\{{"), "{{", "an escaped {{ needs no closing braces");
  assert.equal(texts("\\\\{{name}}"), "\\<name>");
  assert.equal(texts("\\\\\\{{name}}"), "\\{{name}}");
  assert.equal(texts("\\\\\\\\{{name}}"), "\\\\<name>");
  assert.equal(texts("C:\\dir\\ \\n \\}} {{a}}\\"), "C:\\dir\\ \\n \\}} <a>\\");
  assert.equal(texts("\\{{{{a}}"), "{{<a>");
  assert.equal(texts("\\{{> ctx}} \\\\{{>ctx}}"), "{{> ctx}} \\<>ctx>", "partials escape the same way");
});

test("parseTemplate: {{> ref}} is a partial naming an entity by name or UUID; anything else after > is TEMPLATE_SYNTAX", () => {
  assert.deepEqual(parseTemplate("a {{> shared-context }} b"), [
    { kind: "text", text: "a " },
    { kind: "partial", ref: "shared-context", source: "{{> shared-context }}" },
    { kind: "text", text: " b" },
  ]);
  assert.deepEqual(parseTemplate("{{>0b9f2c1e-4a7d-4e1a-9c3b-2f6d8e0a1b2c}}")[0], { kind: "partial", ref: "0b9f2c1e-4a7d-4e1a-9c3b-2f6d8e0a1b2c", source: "{{>0b9f2c1e-4a7d-4e1a-9c3b-2f6d8e0a1b2c}}" });
  for (const bad of ["{{>}}", "{{> Bad Name}}", "{{> a.b}}", "{{>> x}}"]) {
    assert.throws(() => parseTemplate(bad), (err: unknown) => err instanceof FailedPreconditionError && err.reason === ErrorReason.TEMPLATE_SYNTAX, bad);
  }
});

test("parseTemplate: an unclosed {{ or a bad name is TEMPLATE_SYNTAX at the line and column of its {{", () => {
  assert.deepEqual(syntaxAt("Hello {{name"), { line: "1", column: "7" });
  assert.deepEqual(syntaxAt("{{ }}"), { line: "1", column: "1" });
  assert.deepEqual(syntaxAt("{{}}"), { line: "1", column: "1" });
  assert.deepEqual(syntaxAt("a\nbc {{a..b}}"), { line: "2", column: "4" });
  // Columns count code points: the emoji before is one column.
  assert.deepEqual(syntaxAt("line one\r\n😀 {{.a}}"), { line: "2", column: "3" });
  for (const bad of ["{{a.}}", "{{a b}}", "{{{a}}}", "{{a}b}}", "{{a\nb}}", "{{ $x }}", "{{a {{b}}"]) {
    assert.deepEqual(syntaxAt(`ok {{fine}} ${bad}`), { line: "1", column: "13" }, bad);
  }
  // A backslash inside a placeholder escapes nothing: the placeholder's name is bad.
  assert.deepEqual(syntaxAt("{{a}} {{b \\{{c}}"), { line: "1", column: "7" });
});

test("renderTemplate: strings as they are, other values as compact JSON, dotted paths into objects", () => {
  const variables = {
    name: "Ada {{not parsed}}",
    n: 42,
    pi: 1.5,
    yes: true,
    nothing: null,
    list: [1, "two", { three: 3 }],
    user: { name: "Grace", address: { city: "Arlington" }, tags: ["a"] },
  };
  const out = render("{{name}}|{{n}}|{{pi}}|{{yes}}|{{nothing}}|{{list}}|{{user}}|{{ user.name }}|{{user.address.city}}|{{user.tags}}", variables);
  assert.equal(
    out.text,
    'Ada {{not parsed}}|42|1.5|true|null|[1,"two",{"three":3}]|{"name":"Grace","address":{"city":"Arlington"},"tags":["a"]}|Grace|Arlington|["a"]',
  );
  assert.deepEqual(out.missingVariables, []);
  assert.deepEqual(out.unusedVariables, []);
});

test("renderTemplate: a path through a value that is not an object, or an unknown key, has no value", () => {
  const out = render("{{user.name.first}} {{list.0}} {{user.missing}} {{user.name}}", { user: { name: "Grace" }, list: ["x"] });
  assert.equal(out.text, "{{user.name.first}} {{list.0}} {{user.missing}} Grace");
  assert.deepEqual(out.missingVariables, ["user.name.first", "list.0", "user.missing"]);
});

test("renderTemplate: only own keys are variables (no Object.prototype members)", () => {
  const out = render("{{constructor}} {{toString}} {{__proto__}} {{user.constructor}} {{hasOwnProperty}}", { user: {} });
  assert.equal(out.text, "{{constructor}} {{toString}} {{__proto__}} {{user.constructor}} {{hasOwnProperty}}");
  assert.deepEqual(out.missingVariables, ["constructor", "toString", "__proto__", "user.constructor", "hasOwnProperty"]);
  const declared = [{ name: "toString", default: "declared" }];
  assert.equal(render("{{toString}}", {}, LENIENT, declared).text, "declared");
});

test("renderTemplate: defaults from content.variables; the request's value wins; a null default is none", () => {
  const declared = [
    { name: "tone", description: "how to speak", default: "friendly" },
    { name: "limits", default: { words: 100 } },
    { name: "count", default: 3 },
    { name: "none", default: null },
    { name: "tone", default: "second declaration is ignored" },
    { description: "no name: ignored" },
    "not an object",
  ];
  const out = render("{{tone}}/{{limits.words}}/{{limits}}/{{count}}/{{none}}", { count: 7 }, LENIENT, declared);
  assert.equal(out.text, 'friendly/100/{"words":100}/7/{{none}}');
  assert.deepEqual(out.missingVariables, ["none"]);
  // Declarations that are not a list are ignored, not an error.
  assert.equal(render("{{a}}", {}, LENIENT, { a: { default: "x" } }).text, "{{a}}");
});

test("renderTemplate: lenient keeps placeholders as written, reports each once by first appearance", () => {
  const out = render("{{ b }} {{a}} {{b}} {{ a }} {{c.d}} {{b}}", { e: 1, d: 2 });
  assert.equal(out.text, "{{ b }} {{a}} {{b}} {{ a }} {{c.d}} {{b}}");
  assert.deepEqual(out.missingVariables, ["b", "a", "c.d"]);
  assert.deepEqual(out.unusedVariables, ["d", "e"]);
});

test("renderTemplate: unused variables are the request's names no placeholder starts with, sorted", () => {
  const out = render("{{user.name}} {{x}}", { zeta: 1, user: { name: "u", other: 1 }, alpha: "", x: "", x2: 0 });
  assert.deepEqual(out.unusedVariables, ["alpha", "x2", "zeta"]);
  assert.deepEqual(render("plain text", { a: 1 }).unusedVariables, ["a"]);
  assert.deepEqual(render("\\{{a}}", { a: 1 }).unusedVariables, ["a"], "an escaped placeholder does not use its variable");
});

test("renderTemplate: strict fails with every missing placeholder listed; given or defaulted values pass", () => {
  const declared = [{ name: "tone", default: "calm" }];
  const metadata = thrown(
    () => render("{{a}} {{tone}} {{b.c}} {{a}} {{d}}", { b: {} }, STRICT, declared),
    FailedPreconditionError,
    ErrorReason.TEMPLATE_VARIABLES_MISSING,
  );
  assert.deepEqual(metadata, { missing_variables: "a,b.c,d", missing_count: "3" });
  assert.equal(render("{{a}} {{tone}}", { a: "x" }, STRICT, declared).text, "x calm");
});

test("renderTemplate: a required variable without a value fails lenient rendering too; a default or a value satisfies it", () => {
  const declared = [
    { name: "topic", required: true },
    { name: "style", required: true, default: "plain" },
    { name: "user", required: true },
    { name: "extra", required: false },
    { name: "flag", required: "yes" },
  ];
  const template = "{{topic}} {{style}} {{user.name}} {{extra}} {{flag}}";
  const metadata = thrown(() => render(template, {}, LENIENT, declared), FailedPreconditionError, ErrorReason.TEMPLATE_VARIABLES_MISSING);
  assert.deepEqual(metadata, { missing_variables: "topic,user.name", missing_count: "2" });
  // Given, the required variable is satisfied even where a path into it finds nothing.
  const out = render(template, { topic: "t", user: {} }, LENIENT, declared);
  assert.equal(out.text, "t plain {{user.name}} {{extra}} {{flag}}");
  assert.deepEqual(out.missingVariables, ["user.name", "extra", "flag"]);
  // A required variable the text never uses is not checked.
  assert.equal(render("static", {}, LENIENT, declared).text, "static");
});

test("renderTemplate: the error lists missing names up to about 1 KiB and counts them all", () => {
  const names = Array.from({ length: 300 }, (_, i) => `variable_${i}`);
  const metadata = thrown(() => render(names.map((n) => `{{${n}}}`).join(" "), {}, STRICT), FailedPreconditionError, ErrorReason.TEMPLATE_VARIABLES_MISSING);
  assert.equal(metadata.missing_count, "300");
  const listed = metadata.missing_variables!.split(",");
  assert.ok(metadata.missing_variables!.length <= 1024);
  assert.ok(listed.length > 50);
  assert.deepEqual(listed, names.slice(0, listed.length));
});

test("renderTemplate: the text is bounded in UTF-8 bytes, counted before it is built", () => {
  const options = { strict: false, maxBytes: 10 };
  assert.equal(render("{{x}}{{x}}", { x: "éé" }, options).text, "éééé", "8 bytes");
  assert.equal(render("ab{{x}}{{x}}", { x: "éé" }, options).text, "abéééé", "exactly 10 bytes");
  const metadata = thrown(() => render("abc{{x}}{{x}}", { x: "éé" }, options), InvalidArgumentError, ErrorReason.CONTENT_TOO_LARGE);
  assert.deepEqual(metadata, { limit_bytes: "10", size_bytes: "11" });
  // A placeholder left in place counts as written; a default counts like a value.
  thrown(() => render("{{  missing  }}", {}, options), InvalidArgumentError, ErrorReason.CONTENT_TOO_LARGE);
  thrown(() => render("{{d}}{{d}}", {}, options, [{ name: "d", default: "123456" }]), InvalidArgumentError, ErrorReason.CONTENT_TOO_LARGE);

  // The real limit: a 1 MiB value repeated 10,000 times would be 10 GiB; it is refused at once.
  const huge = "y".repeat(1024 * 1024);
  const repeated = "{{v}}".repeat(10_000);
  const big = thrown(() => render(repeated, { v: huge }), InvalidArgumentError, ErrorReason.CONTENT_TOO_LARGE);
  assert.deepEqual(big, { limit_bytes: String(MAX_RENDERED_BYTES), size_bytes: String(10_000 * 1024 * 1024) });
  assert.equal(render("{{v}}{{v}}", { v: huge }).text.length, 2 * 1024 * 1024, "2 MiB exactly is allowed");
  // Many paths into one huge value: serializing stops at the first one past the limit (a lower bound of the size).
  const nested = { a: { b: { c: huge } } };
  const paths = thrown(() => render("{{v}}{{v.a}}{{v.a.b}}{{v.a.b.c}}", { v: nested }, { strict: false, maxBytes: 1024 * 1024 }), InvalidArgumentError, ErrorReason.CONTENT_TOO_LARGE);
  assert.deepEqual(paths, { limit_bytes: String(1024 * 1024), size_bytes: String(JSON.stringify(nested).length) });
  // Text alone past the limit fails before any value is serialized.
  assert.deepEqual(thrown(() => render("0123456789ab{{v}}", { v: huge }, options), InvalidArgumentError, ErrorReason.CONTENT_TOO_LARGE), {
    limit_bytes: "10",
    size_bytes: "12",
  });
});

test("renderTemplate: content without a template text is NOT_A_TEMPLATE", () => {
  for (const content of [{}, { template: 1 }, { template: null }, { template: { text: "x" } }, { text: "{{a}}" }]) {
    thrown(() => renderTemplate(content, {}, LENIENT), FailedPreconditionError, ErrorReason.NOT_A_TEMPLATE);
  }
  assert.deepEqual(renderTemplate({ template: "" }, { a: 1 }, STRICT), { text: "", missingVariables: [], unusedVariables: ["a"] });
});

test("parseTemplate: {{> ref}} is a partial naming an entity by name or UUID (lowercased); \\{{> is text", () => {
  const id = "0193F2C4-7B1A-7C3E-9D2F-1A2B3C4D5E6F";
  assert.deepEqual(parseTemplate(`A{{> tone}}B{{>${id} }}{{ >x}}`), [
    { kind: "text", text: "A" },
    { kind: "partial", ref: "tone", source: "{{> tone}}" },
    { kind: "text", text: "B" },
    { kind: "partial", ref: id.toLowerCase(), source: `{{>${id} }}` },
    { kind: "partial", ref: "x", source: "{{ >x}}" },
  ]);
  assert.deepEqual(parseTemplate("\\{{> tone}}"), [{ kind: "text", text: "{{> tone}}" }]);
  for (const bad of ["{{>}}", "{{> }}", "{{> Tone}}", "{{> a b}}", "{{> -a}}", "{{>> a}}", "{{> a.b}}"]) {
    assert.deepEqual(syntaxAt(`ok ${bad}`), { line: "1", column: "4" }, bad);
  }
});

test("renderTemplate: a partial takes its included text, counted in the size; one that was not resolved is PARTIAL_UNRESOLVED", () => {
  const included = new Map([["tone", "Be {{brief}}."]]);
  const rendered = renderTemplate({ template: "{{> tone}} Hi {{name}}" }, { name: "Ada" }, LENIENT, included);
  assert.equal(rendered.text, "Be {{brief}}. Hi Ada", "included text is not parsed again");
  thrown(() => renderTemplate({ template: "{{> other}}" }, {}, LENIENT, included), FailedPreconditionError, ErrorReason.PARTIAL_UNRESOLVED);
  const big = new Map([["big", "x".repeat(20)]]);
  const meta = thrown(() => renderTemplate({ template: "{{> big}}{{> big}}" }, {}, { strict: false, maxBytes: 30 }, big), InvalidArgumentError, ErrorReason.CONTENT_TOO_LARGE);
  assert.equal(meta.limit_bytes, "30");
});
