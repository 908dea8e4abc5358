// The embedded engine (PGlite + pgvector served over the wire protocol) lives here.
export {};
