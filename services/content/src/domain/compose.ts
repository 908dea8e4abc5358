import type { Knex } from "@promptcraft/db";
import { FailedPreconditionError, NotFoundError } from "@promptcraft/platform";
import { ErrorReason } from "@promptcraft/proto/promptcraft/rpc/v1/errors_pb";
import type { VersionSelector } from "../store/entities.js";
import type { Caller } from "./access.js";
import { getEntity, type EntityRow } from "./entities.js";
import type { EntityRef } from "./names.js";
import { declarationsOf, notATemplate, parseTemplate, renderParts, type Declaration, type Rendered, type RenderOptions, type TemplatePart } from "./render.js";

/**
 * Composition (issue 12.4): `{{> ref}}` in a template renders another entity in place, with the
 * same variables, recursively. Which version is graph's answer, never content's guess: the
 * including entity must have a depends_on / part_of relationship to the partial, and the version
 * used is what GraphService.ResolveDependencies resolves that relationship to (pinned, label,
 * latest), asked with the caller's credentials. Each partial's text is `content.template`, else
 * `content.text`; the variables it declares add defaults for names the includer does not declare.
 * Every (entity, version) used goes into the receipt.
 */

/** One resolved edge of the template's dependency closure (graph's ResolveDependencies). */
export interface ResolvedEdge {
  dependentEntityId: string;
  entityId: string;
  /** The version it resolves to; undefined when it does not resolve. */
  version: number | undefined;
}

/** The dependency closure of an entity as graph resolves it now; may fail UNAVAILABLE. */
export type DependenciesOf = (entityId: string) => Promise<ResolvedEdge[]>;

/** An entity version a render used. */
export interface ReceiptEntry {
  entityId: string;
  name: string;
  version: number;
}

/** Deepest nesting of partials (graph's depth limit: no dependency chain is longer). */
const MAX_PARTIAL_DEPTH = 10;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function partialUnresolved(ref: string, templateId: string, why: string): FailedPreconditionError {
  return new FailedPreconditionError(`{{> ${ref}}} cannot be rendered: ${why}`, {
    reason: ErrorReason.TEMPLATE_PARTIAL_UNRESOLVED,
    metadata: { partial: ref, template_entity_id: templateId },
  });
}

/**
 * Renders the selected version of a template entity (by id or name) for a caller with view
 * (NOT_FOUND otherwise, like GetEntity; a soft-deleted template renders, as GetEntity still returns
 * it), its partials included. Read-only. Without `dependenciesOf` (no graph configured) a template
 * with partials fails TEMPLATE_PARTIAL_UNRESOLVED.
 */
export async function renderEntity(
  db: Knex,
  caller: Caller,
  ref: EntityRef,
  selector: VersionSelector,
  variables: Record<string, unknown>,
  options: RenderOptions,
  dependenciesOf?: DependenciesOf,
): Promise<{ row: EntityRow; rendered: Rendered; receipt: ReceiptEntry[] }> {
  const { row } = await getEntity(db, caller, ref, selector, true);
  if (row.entity_type !== "template") throw notATemplate(`the entity is a ${row.entity_type}, not a template`);
  const content = row.content ?? {};
  if (typeof content.template !== "string") throw notATemplate("the template's content has no `template` text");
  const parts = parseTemplate(content.template);
  const declared = declarationsOf(content.variables);
  const receipt: ReceiptEntry[] = [{ entityId: row.id, name: row.name, version: row.version }];
  const first = parts.find((p) => p.kind === "partial");
  if (!first) return { row, rendered: renderParts(parts, declared, variables, options), receipt };
  if (!dependenciesOf) throw partialUnresolved(first.ref, row.id, "composition needs the graph service, which this content service is not configured with (GRAPH_URL)");
  const edges = await dependenciesOf(row.id);
  const expanded = await expand(db, caller, parts, row.id, edges, declared, receipt, 1);
  return { row, rendered: renderParts(expanded, declared, variables, options), receipt };
}

/** `parts` with every partial replaced by the parts of the version graph resolves it to, recursively. */
async function expand(
  db: Knex,
  caller: Caller,
  parts: TemplatePart[],
  includerId: string,
  edges: ResolvedEdge[],
  declared: Map<string, Declaration>,
  receipt: ReceiptEntry[],
  depth: number,
): Promise<TemplatePart[]> {
  const out: TemplatePart[] = [];
  for (const part of parts) {
    if (part.kind !== "partial") {
      out.push(part);
      continue;
    }
    if (depth > MAX_PARTIAL_DEPTH) throw partialUnresolved(part.ref, includerId, `partials nest deeper than ${MAX_PARTIAL_DEPTH}`);
    const target = await findTarget(db, caller, part.ref, includerId);
    const edge = edges.find((e) => e.dependentEntityId === includerId && e.entityId === target);
    if (!edge) throw partialUnresolved(part.ref, includerId, "the including entity has no depends_on or part_of relationship to it");
    if (edge.version === undefined) throw partialUnresolved(part.ref, includerId, "its relationship does not resolve to a version (label or version missing, or the entity deleted)");
    const { row } = await getEntity(db, caller, { id: target }, { kind: "version", version: edge.version }, true);
    const content = row.content ?? {};
    const text = typeof content.template === "string" ? content.template : typeof content.text === "string" ? content.text : undefined;
    if (text === undefined) throw partialUnresolved(part.ref, includerId, "its content has no `template` or `text`");
    if (!receipt.some((r) => r.entityId === row.id && r.version === row.version)) receipt.push({ entityId: row.id, name: row.name, version: row.version });
    for (const [name, declaration] of declarationsOf(content.variables)) if (!declared.has(name)) declared.set(name, declaration);
    out.push(...(await expand(db, caller, parseTemplate(text), row.id, edges, declared, receipt, depth + 1)));
  }
  return out;
}

/** The entity a partial names (name or UUID), if the caller may view it; else TEMPLATE_PARTIAL_UNRESOLVED. */
async function findTarget(db: Knex, caller: Caller, ref: string, includerId: string): Promise<string> {
  try {
    const { row } = await getEntity(db, caller, UUID.test(ref) ? { id: ref.toLowerCase() } : { name: ref }, { kind: "current" }, false);
    return row.id;
  } catch (err) {
    if (err instanceof NotFoundError) throw partialUnresolved(ref, includerId, "no entity of that name or id that you may view");
    throw err;
  }
}
