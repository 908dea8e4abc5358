import { describe, expect, it } from "vitest";
import { hashEmbedding, LocalHashProvider } from "./local.js";

function cosine(a: number[], b: number[]): number {
  return a.reduce((sum, x, i) => sum + x * b[i]!, 0);
}

describe("local hashing provider", () => {
  const provider = new LocalHashProvider();
  const signal = new AbortController().signal;

  it("returns one unit vector of 384 dimensions per text, in order", async () => {
    const vectors = await provider.embed(["A prompt for summarising legal contracts", "weather report"], signal);
    expect(vectors).toHaveLength(2);
    for (const v of vectors) {
      expect(v).toHaveLength(384);
      expect(Math.sqrt(cosine(v, v))).toBeCloseTo(1, 10);
    }
  });

  it("is deterministic", async () => {
    const [a] = await provider.embed(["Summarise the contract"], signal);
    expect(hashEmbedding("Summarise the contract", 384)).toEqual(a);
  });

  it("is lexical: shared words and spellings are close, unrelated words are not", () => {
    const query = hashEmbedding("summarise legal contracts", 384);
    const near = hashEmbedding("A template that summarises a legal contract", 384);
    const far = hashEmbedding("Recipe for banana bread with walnuts", 384);
    expect(cosine(query, near)).toBeGreaterThan(0.3);
    expect(cosine(query, far)).toBeLessThan(0.2);
    expect(cosine(query, near)).toBeGreaterThan(cosine(query, far) + 0.3);
  });

  it("ignores case and punctuation", () => {
    expect(hashEmbedding("Hello, World!", 384)).toEqual(hashEmbedding("hello world", 384));
  });

  it("gives text without words a fixed unit vector (never a zero vector)", () => {
    const v = hashEmbedding("!!! ...", 384);
    expect(Math.sqrt(cosine(v, v))).toBeCloseTo(1, 10);
    expect(hashEmbedding("", 384)).toEqual(v);
  });

  it("stops when its signal has aborted", async () => {
    const aborted = AbortSignal.abort(new Error("stopped"));
    await expect(provider.embed(["x"], aborted)).rejects.toThrow("stopped");
  });
});
