import { createHash } from "node:crypto";

/**
 * The canonical form behind `entity_version.content_hash`, shared by the content service (which
 * writes versions) and the test fixtures (which write versions the way it does), so both compute
 * the same hash for the same fields.
 */

/** The versioned fields of an asset (one `entity_version` row), as stored. */
export interface VersionFields {
  title: string;
  description: string;
  status: "draft" | "published" | "deprecated" | "archived";
  visibility: "private" | "tenant";
  content: Record<string, unknown>;
  tags: string[];
  metadata: Record<string, unknown>;
}

/** JSON with object keys sorted recursively, so that equal values give equal text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v)).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/**
 * `entity_version.content_hash`: lowercase hex SHA-256 of the canonical JSON of the version fields.
 * Equal hash = unchanged version = an update that must not create a new version.
 */
export function contentHash(fields: VersionFields): string {
  const { title, description, status, visibility, content, tags, metadata } = fields;
  return createHash("sha256")
    .update(canonicalJson({ title, description, status, visibility, content, tags, metadata }))
    .digest("hex");
}
