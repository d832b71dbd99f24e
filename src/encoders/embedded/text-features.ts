/**
 * Text features for the embedded encoder: hashed word unigrams and bigrams plus character 3- and
 * 4-grams of each word (so "smiling" and "smile" share features), log term frequency, signed
 * feature hashing into `buckets` dimensions, IDF fitted on the KB texts, L2-normalised.
 * Vectors are sparse: parallel arrays of bucket indices and values.
 */

export interface TextFeatureConfig {
  buckets: number;
  charGrams: readonly number[];
  /** Weights of the feature families before IDF. */
  weights: { word: number; bigram: number; char: number };
}

export const DEFAULT_TEXT_FEATURES: TextFeatureConfig = {
  buckets: 8192,
  charGrams: [3, 4],
  weights: { word: 1, bigram: 0.5, char: 0.5 },
};

export interface SparseVector {
  index: Int32Array;
  value: Float32Array;
}

/** Lower-case words: letters and digits (any script), underscores and hyphens split words. */
export function tokenize(text: string): string[] {
  return text.toLowerCase().normalize('NFKC').match(/[\p{L}\p{N}]+/gu) ?? [];
}

/** 32-bit FNV-1a over UTF-16 code units. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Raw (pre-IDF) hashed term counts of one text, as a bucket -> signed weight map. */
function hashedCounts(text: string, c: TextFeatureConfig): Map<number, number> {
  const words = tokenize(text);
  const counts = new Map<string, number>();
  const add = (key: string, w: number) => counts.set(key, (counts.get(key) ?? 0) + w);
  for (let i = 0; i < words.length; i++) {
    add(`w:${words[i]}`, c.weights.word);
    if (i > 0) add(`b:${words[i - 1]} ${words[i]}`, c.weights.bigram);
    const padded = `#${words[i]}#`;
    for (const g of c.charGrams) for (let s = 0; s + g <= padded.length; s++) add(`c${g}:${padded.slice(s, s + g)}`, c.weights.char);
  }
  const out = new Map<number, number>();
  for (const [key, w] of counts) {
    const h = fnv1a(key);
    const bucket = h % c.buckets;
    const sign = (h >>> 31) & 1 ? -1 : 1;
    out.set(bucket, (out.get(bucket) ?? 0) + sign * Math.log1p(w));
  }
  return out;
}

/** Inverse document frequency per bucket, fitted on the KB texts: log((1 + n) / (1 + df)) + 1. */
export function fitIdf(texts: readonly string[], c: TextFeatureConfig): Float32Array {
  const df = new Float64Array(c.buckets);
  for (const t of texts) for (const b of hashedCounts(t, c).keys()) df[b]++;
  return Float32Array.from(df, (v) => Math.log((1 + texts.length) / (1 + v)) + 1);
}

/** TF-IDF sparse vector, L2-normalised (an empty text gives the empty vector). */
export function textVector(text: string, c: TextFeatureConfig, idf: Float32Array): SparseVector {
  const counts = hashedCounts(text, c);
  const index = new Int32Array(counts.size);
  const value = new Float32Array(counts.size);
  let i = 0;
  let norm = 0;
  for (const [b, v] of [...counts].sort((a, z) => a[0] - z[0])) {
    index[i] = b;
    value[i] = v * idf[b];
    norm += value[i] * value[i];
    i++;
  }
  if (norm > 0) {
    const inv = 1 / Math.sqrt(norm);
    for (let j = 0; j < value.length; j++) value[j] *= inv;
  }
  return { index, value };
}

/** rows [n] sparse x dense M [buckets, cols] -> [n, cols]. */
export function sparseTimesDense(rows: readonly SparseVector[], m: Float32Array, cols: number): Float32Array {
  const out = new Float32Array(rows.length * cols);
  rows.forEach((r, i) => {
    const o = i * cols;
    for (let t = 0; t < r.index.length; t++) {
      const v = r.value[t];
      const src = r.index[t] * cols;
      for (let j = 0; j < cols; j++) out[o + j] += v * m[src + j];
    }
  });
  return out;
}

/** rows^T [buckets, n] x dense Y [n, cols] -> [buckets, cols]. */
export function sparseTransposeTimesDense(rows: readonly SparseVector[], y: Float32Array, cols: number, buckets: number): Float32Array {
  const out = new Float32Array(buckets * cols);
  rows.forEach((r, i) => {
    const src = i * cols;
    for (let t = 0; t < r.index.length; t++) {
      const v = r.value[t];
      const o = r.index[t] * cols;
      for (let j = 0; j < cols; j++) out[o + j] += v * y[src + j];
    }
  });
  return out;
}
