import type { Knex } from "@promptcraft/db";
import * as store from "../store/relationships.js";
import * as walk from "../store/traversal.js";
import { entityNotFound, VIEW, type Caller } from "./access.js";
import { ACYCLIC_TYPES, MAX_DEPTH, readsOf, type RelationshipRow, type RelationshipType } from "./relationships.js";

/**
 * The walks of issue 12.2–12.5, breadth first with one statement per level: each node is expanded
 * exactly once, at the smallest depth it is reached (a diamond lattice or a hub costs nodes + edges,
 * never paths). A walk enters only entities the caller may view (content's rule), so nothing beyond
 * an invisible entity is reached through it either.
 */

/** A node of a traversal: an entity the caller may view and its distance from the root. */
export interface GraphNode {
  entityId: string;
  entityType: store.EntityRow["entity_type"];
  title: string;
  currentVersion: number;
  depth: number;
  deleted: boolean;
}

export interface EntityGraphQuery {
  entityId: string;
  depth: number;
  direction: "outgoing" | "incoming" | "both";
  types: RelationshipType[];
  minStrength: number;
  maxNodes: number;
  includeDeleted: boolean;
}

export interface EntityGraph {
  nodes: GraphNode[];
  edges: RelationshipRow[];
  truncated: boolean;
}

/** The root as the caller sees it: NOT_FOUND unless it exists and the caller may view it. */
async function rootOf(db: Knex, caller: Caller, entityId: string): Promise<store.EntityRow> {
  const root = (await store.findEntities(readsOf(db, caller), caller, [entityId])).get(entityId);
  if (!root || root.permission < VIEW) throw entityNotFound("entity_id");
  return root;
}

/**
 * GetEntityGraph: the nodes within `depth` of the root in `direction`, root first, then by depth
 * (stronger edges first within a level), at most `maxNodes`; `truncated` when the limit stopped the
 * walk with nodes left to add. Edges: every relationship (of the types and strength asked) between
 * two returned nodes. Soft-deleted entities are neither returned nor walked through unless
 * `includeDeleted`.
 */
export async function getEntityGraph(db: Knex, caller: Caller, q: EntityGraphQuery): Promise<EntityGraph> {
  const reads = readsOf(db, caller);
  const root = await rootOf(db, caller, q.entityId);
  const nodes: GraphNode[] = [
    { entityId: root.id, entityType: root.entity_type, title: root.title, currentVersion: root.current_version, depth: 0, deleted: root.deleted_at !== null },
  ];
  const seen = new Set([root.id]);
  let frontier = [root.id];
  let truncated = false;
  for (let depth = 1; depth <= q.depth && frontier.length > 0 && !truncated; depth++) {
    const next: string[] = [];
    const room = q.maxNodes - nodes.length;
    const steps = await walk.stepNodes(reads, caller, {
      tenantId: caller.tenantId,
      frontier,
      outgoing: q.direction !== "incoming",
      incoming: q.direction !== "outgoing",
      types: q.types,
      minStrength: q.minStrength,
      seen: [...seen],
      includeDeleted: q.includeDeleted,
      limit: room + 1,
    });
    for (const s of steps) {
      if (nodes.length >= q.maxNodes) {
        truncated = true;
        break;
      }
      seen.add(s.next_id);
      next.push(s.next_id);
      nodes.push({ entityId: s.next_id, entityType: s.entity_type, title: s.title, currentVersion: s.current_version, depth, deleted: s.deleted_at !== null });
    }
    frontier = next;
  }
  const edges = await walk.edgesAmong(reads, caller.tenantId, [...seen], q.types, q.minStrength);
  return { nodes, edges, truncated };
}

/** How a dependency's version was chosen, and what came of it. */
export type ResolutionKind = "pinned" | "label" | "latest";
export type ResolutionState = "resolved" | "label_missing" | "version_missing" | "entity_deleted" | "not_visible";

export interface ResolvedDependency {
  /** Empty when not visible. */
  entityId: string;
  entityType: store.EntityRow["entity_type"] | null;
  title: string;
  dependentEntityId: string;
  /** Empty when not visible. */
  relationshipId: string;
  relationshipType: RelationshipType;
  depth: number;
  kind: ResolutionKind;
  label: string;
  state: ResolutionState;
  version: number | null;
  conflicting: boolean;
}

export interface Resolution {
  dependencies: ResolvedDependency[];
  complete: boolean;
  resolveTime: Date;
}

/**
 * ResolveDependencies: the transitive closure of the root's dependency edges (of `types`) as they
 * were at `asOf` (now when unset), each target resolved to a concrete version as of then (see
 * store/traversal.ts `resolveStep`). One entry per edge; a dependency is expanded once, through its
 * first-reached (shallowest) edge, and only when resolved: an unresolvable, deleted or invisible one
 * is reported, not walked. Entries come in dependency order (every dependency before what depends
 * on it); entries of one entity resolving to different versions are all marked `conflicting`.
 * Invisible dependencies carry neither id nor title (they do not exist for the caller) but make the
 * result incomplete. Visibility and deletion are judged now (access is a present-tense question).
 */
export async function resolveDependencies(db: Knex, caller: Caller, q: { entityId: string; asOf?: Date; maxDepth: number; types: RelationshipType[] }): Promise<Resolution> {
  const reads = readsOf(db, caller);
  await rootOf(db, caller, q.entityId);
  const time = q.asOf ?? (await walk.databaseNow(reads));
  const entries: ResolvedDependency[] = [];
  const expanded = new Set([q.entityId]);
  /** Edges between resolved entities, for the dependency order. */
  const children = new Map<string, string[]>();
  let frontier = [q.entityId];
  for (let depth = 1; depth <= q.maxDepth && frontier.length > 0; depth++) {
    const next: string[] = [];
    for (const s of await walk.resolveStep(reads, caller, frontier, q.types, time)) {
      const kind: ResolutionKind = s.target_version !== null ? "pinned" : s.target_label !== null ? "label" : "latest";
      const visible = s.entity_type !== null && s.permission >= VIEW;
      const deleted = s.entity_type === null || (s.deleted_at !== null && s.deleted_at.getTime() <= time.getTime());
      const state: ResolutionState = !visible
        ? s.entity_type === null
          ? "entity_deleted"
          : "not_visible"
        : deleted
          ? "entity_deleted"
          : s.version === null
            ? kind === "label"
              ? "label_missing"
              : "version_missing"
            : "resolved";
      const hidden = state === "not_visible";
      entries.push({
        entityId: hidden ? "" : s.target_id,
        entityType: hidden ? null : s.entity_type,
        title: state === "resolved" ? (s.title ?? "") : "",
        dependentEntityId: s.source_id,
        relationshipId: hidden ? "" : s.relationship_id,
        relationshipType: s.relationship_type,
        depth,
        kind,
        label: s.target_label ?? "",
        state,
        version: state === "resolved" ? s.version : null,
        conflicting: false,
      });
      if (state !== "resolved") continue;
      children.set(s.source_id, [...(children.get(s.source_id) ?? []), s.target_id]);
      if (!expanded.has(s.target_id)) {
        expanded.add(s.target_id);
        next.push(s.target_id);
      }
    }
    frontier = next;
  }
  markConflicts(entries);
  const height = heights(children);
  const ordered = entries
    .map((entry, index) => ({ entry, index }))
    .sort((x, y) => (height.get(x.entry.entityId) ?? 0) - (height.get(y.entry.entityId) ?? 0) || y.entry.depth - x.entry.depth || x.index - y.index)
    .map((x) => x.entry);
  return { dependencies: ordered, complete: entries.every((e) => e.state === "resolved"), resolveTime: time };
}

/** Marks the resolved entries of an entity that resolves to more than one version. */
function markConflicts(entries: ResolvedDependency[]): void {
  const versions = new Map<string, Set<number>>();
  for (const e of entries) if (e.state === "resolved") versions.set(e.entityId, (versions.get(e.entityId) ?? new Set()).add(e.version!));
  for (const e of entries) if (e.state === "resolved" && versions.get(e.entityId)!.size > 1) e.conflicting = true;
}

/**
 * The height of each node in the (acyclic) dependency graph `children`: 0 for a leaf, else one more
 * than its highest child. Sorting entries by their target's height puts every dependency before
 * what depends on it. Memoised, so each node is computed once; a cycle (impossible for one instant,
 * guarded anyway) stops at the node already on the stack.
 */
function heights(children: Map<string, string[]>): Map<string, number> {
  const height = new Map<string, number>();
  const onStack = new Set<string>();
  const visit = (node: string): number => {
    const known = height.get(node);
    if (known !== undefined) return known;
    if (onStack.has(node)) return 0;
    onStack.add(node);
    let h = 0;
    for (const child of children.get(node) ?? []) h = Math.max(h, visit(child) + 1);
    onStack.delete(node);
    height.set(node, h);
    return h;
  };
  for (const node of children.keys()) visit(node);
  return height;
}

/** An entity reached by impact analysis. */
export interface ImpactedEntity {
  entityId: string;
  entityType: store.EntityRow["entity_type"];
  title: string;
  depth: number;
  affected: boolean;
  /** Relationship ids of the shortest path from this entity down to the analysed one. */
  path: string[];
  /** Distinct paths down to the analysed entity (saturating at 2^53 - 1). */
  pathCount: number;
  labels: string[];
}

export interface Impact {
  impacted: ImpactedEntity[];
  affectedCount: number;
  pinnedCount: number;
  truncated: boolean;
}

/**
 * AnalyzeImpact: every entity that depends on the analysed one through incoming edges of `types`
 * (default depends_on and part_of), breadth first within `maxDepth`, through entities the caller may
 * view. A dependent is AFFECTED when some path ends in a floating edge into the analysed entity —
 * no pin (a new version reaches it) or, when `label` is given, a pin on that label (moving the label
 * reaches it) — and PINNED otherwise. Pins of the edges further up do not shield: a relationship pins
 * its target's version, not the target's own dependencies, which resolve at render time. Ordered by
 * depth, affected first; counts cover all, `maxResults` bounds the list.
 */
export async function analyzeImpact(
  db: Knex,
  caller: Caller,
  q: { entityId: string; label: string; maxDepth: number; types: RelationshipType[]; maxResults: number },
): Promise<Impact> {
  const reads = readsOf(db, caller);
  await rootOf(db, caller, q.entityId);
  const types = q.types.length > 0 ? q.types : [...ACYCLIC_TYPES];
  const reached = new Map<string, ImpactedEntity & { via: string; viaTarget: string }>();
  /** Every edge walked: dependent → what it depends on (both in the walk). */
  const edgesUp: { source: string; target: string; floating: boolean }[] = [];
  let frontier = [q.entityId];
  for (let depth = 1; depth <= q.maxDepth && frontier.length > 0; depth++) {
    const next: string[] = [];
    for (const s of await walk.step(reads, caller, { tenantId: caller.tenantId, frontier, outgoing: false, incoming: true, types, minStrength: 0 })) {
      // Deleted dependents render nothing; invisible ones do not exist for the caller.
      if (s.permission < VIEW || s.deleted_at !== null || s.next_id === q.entityId) continue;
      const floating = q.label === "" ? s.target_version === null && s.target_label === null : s.target_label === q.label;
      edgesUp.push({ source: s.next_id, target: s.target_id, floating });
      if (reached.has(s.next_id)) continue;
      reached.set(s.next_id, {
        entityId: s.next_id,
        entityType: s.entity_type,
        title: s.title,
        depth,
        affected: false,
        path: [],
        pathCount: 0,
        labels: [],
        via: s.relationship_id,
        viaTarget: s.target_id,
      });
      next.push(s.next_id);
    }
    frontier = next;
  }
  const depthCut = frontier.length > 0 && (await walk.anyStep(reads, caller.tenantId, frontier, true, types));

  // Affected and path counts, from the analysed entity up: nodes by depth, so every edge's target
  // (at a smaller or equal depth) is settled before the source that depends on it... except edges
  // within one depth, which a second pass settles (the graph is acyclic, depth ≤ 10).
  const affected = new Set<string>();
  const paths = new Map<string, number>([[q.entityId, 1]]);
  const byDepth = [...reached.values()].sort((a, b) => a.depth - b.depth);
  const bySource = new Map<string, typeof edgesUp>();
  for (const e of edgesUp) bySource.set(e.source, [...(bySource.get(e.source) ?? []), e]);
  const settle = (node: string, stack: Set<string>): void => {
    if (paths.has(node) || stack.has(node)) return;
    stack.add(node);
    let count = 0;
    let isAffected = false;
    for (const e of bySource.get(node) ?? []) {
      settle(e.target, stack);
      count = Math.min(Number.MAX_SAFE_INTEGER, count + (paths.get(e.target) ?? 0));
      if (e.target === q.entityId ? e.floating : affected.has(e.target)) isAffected = true;
    }
    stack.delete(node);
    paths.set(node, count);
    if (isAffected) affected.add(node);
  };
  for (const n of byDepth) settle(n.entityId, new Set());

  const labels = await walk.labelsOf(reads, caller.tenantId, [...reached.keys()]);
  const all = byDepth.map((n) => ({
    ...n,
    affected: affected.has(n.entityId),
    pathCount: paths.get(n.entityId) ?? 0,
    labels: labels.get(n.entityId) ?? [],
    path: pathDown(reached, n.entityId, q.entityId),
  }));
  all.sort((a, b) => a.depth - b.depth || Number(b.affected) - Number(a.affected) || a.entityId.localeCompare(b.entityId));
  const affectedCount = all.filter((n) => n.affected).length;
  return {
    impacted: all.slice(0, q.maxResults).map(({ via: _via, viaTarget: _viaTarget, ...n }) => n),
    affectedCount,
    pinnedCount: all.length - affectedCount,
    truncated: all.length > q.maxResults || depthCut,
  };
}

/** The relationship ids of the first-found (shortest) path from `from` down to `root`. */
function pathDown(reached: Map<string, { via: string; viaTarget: string }>, from: string, root: string): string[] {
  const path: string[] = [];
  for (let at = from; at !== root && path.length <= MAX_DEPTH; ) {
    const node = reached.get(at)!;
    path.push(node.via);
    at = node.viaTarget;
  }
  return path;
}
