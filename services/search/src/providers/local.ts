import type { EmbeddingProvider } from "./provider.js";

/** Name under which the built-in provider's vectors are stored. */
export const LOCAL_MODEL = "local-hash-384";
/** Dimensions of the built-in provider (one of the HNSW-indexed sizes). */
export const LOCAL_DIMENSIONS = 384;

/** Weight of a whole word against one of its character trigrams: words carry most of the signal. */
const WORD_WEIGHT = 1;
const TRIGRAM_WEIGHT = 0.35;
/** Texts are cut here: beyond it more text adds cost, hardly any direction. */
const MAX_CHARS = 100_000;
const WORD = /[\p{L}\p{N}]+/gu;

/**
 * The built-in, network-free embedding "model": feature hashing (the hashing trick) of lower-cased
 * words and of the character trigrams of each word (with boundary marks, so `prompt` and `prompts`
 * share most features) into 384 signed buckets, L2-normalised. Cosine similarity of two vectors is
 * then about the overlap of their vocabularies and spellings: LEXICAL similarity, deterministic and
 * the same on every machine — not meaning (synonyms share nothing). It exists so that `npm start`
 * searches out of the box and tests and benchmarks need no network; a real model is configured
 * through the OpenAI-compatible provider.
 */
export class LocalHashProvider implements EmbeddingProvider {
  readonly model = LOCAL_MODEL;
  readonly dimensions = LOCAL_DIMENSIONS;
  readonly maxBatch = 256;

  async embed(texts: readonly string[], signal: AbortSignal): Promise<number[][]> {
    signal.throwIfAborted();
    return texts.map((text) => hashEmbedding(text, LOCAL_DIMENSIONS));
  }
}

/** The feature-hashed, L2-normalised vector of `text` (see {@link LocalHashProvider}). */
export function hashEmbedding(text: string, dimensions: number): number[] {
  const vector = new Float64Array(dimensions);
  const add = (feature: string, weight: number) => {
    const h = hash32(feature);
    // The low bits choose the bucket, the top bit the sign: signed hashing keeps collisions from
    // adding up to a bias in one direction.
    vector[h % dimensions]! += (h & 0x80000000) !== 0 ? -weight : weight;
  };
  for (const match of text.slice(0, MAX_CHARS).toLowerCase().matchAll(WORD)) {
    const word = match[0];
    add(`w:${word}`, WORD_WEIGHT);
    const marked = `^${word}$`;
    for (let i = 0; i + 3 <= marked.length; i++) add(`t:${marked.slice(i, i + 3)}`, TRIGRAM_WEIGHT);
  }
  let norm = 0;
  for (const x of vector) norm += x * x;
  if (norm === 0) {
    // No word at all (empty or punctuation only): one fixed direction, so that the vector has a
    // cosine with everything (pgvector's cosine of a zero vector is NaN).
    add("empty", 1);
    norm = 1;
  }
  const scale = 1 / Math.sqrt(norm);
  return Array.from(vector, (x) => x * scale);
}

/** FNV-1a over the UTF-16 code units, finished with murmur3's avalanche so that every bit depends on every input bit. */
function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
