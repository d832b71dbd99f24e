import type { RawMatches } from './hnsw.ts';
import { decodeVectors } from './codec.ts';
import type { VectorFile } from './storage.ts';

/**
 * An i8 index ranks coarsely: usearch normalises a row before rounding it to i8, so a unit 512-d
 * row keeps ~6 levels per component and recall@32 drops ~7 points. The KB's own i8 rows are
 * scaled to max |x| = 1 first (codec.ts) and keep ~4x finer steps. Searching for this many times
 * the wanted count and re-scoring the candidates with those rows recovers most of the recall
 * (bench:kb-dtype); the extra cost is reading the candidates' rows.
 */
export const RERANK_POOL_FACTOR = 2;

/**
 * Re-score raw matches by the dot product of each query ([n, dim], unit rows) with the candidates'
 * stored rows and keep the best `keep` per query, best first (distance = 1 - similarity).
 */
export function rerankMatches(raw: RawMatches, queries: Float32Array, dim: number, rows: VectorFile, keep: number): RawMatches {
  const n = queries.length / dim;
  const keys = new BigUint64Array(n * keep); // [n, keep]
  const distances = new Float32Array(n * keep); // [n, keep]
  const counts = new Array<number>(n);
  const candidates: number[] = [];
  for (let q = 0; q < n; q++) for (let j = 0; j < Number(raw.counts[q]); j++) candidates.push(Number(raw.keys[q * raw.stride + j]));
  const similarity = storedSimilarity(rows, candidates, dim);
  let c = 0;
  for (let q = 0; q < n; q++) {
    const found = Number(raw.counts[q]);
    const scored: { row: number; sim: number }[] = [];
    for (let j = 0; j < found; j++, c++) scored.push({ row: candidates[c], sim: similarity(c, queries, q * dim) });
    scored.sort((a, b) => b.sim - a.sim);
    counts[q] = Math.min(found, keep);
    for (let j = 0; j < counts[q]; j++) {
      keys[q * keep + j] = BigInt(scored[j].row);
      distances[q * keep + j] = 1 - scored[j].sim;
    }
  }
  return { keys, distances, counts, stride: keep };
}

/**
 * Cosine similarity of stored row `c` (of `candidates`, read once) with the unit query at
 * `queries[at..at+dim)`. i8 rows are scored on their bytes in one pass, dot(q, x) / |x| (the row's
 * scale cancels; the same value as decoding the re-normalised row first, without allocating it:
 * decoding took half the re-rank's time, bench/predict's profile); other dtypes are decoded.
 */
function storedSimilarity(rows: VectorFile, candidates: readonly number[], dim: number): (c: number, queries: Float32Array, at: number) => number {
  const bytes = rows.readRaw(candidates); // [candidates, dim] at the KB's dtype
  if (rows.dtype === 'i8') {
    const x = new Int8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return (c, queries, at) => {
      let dot = 0;
      let norm = 0;
      for (let d = 0, o = c * dim; d < dim; d++, o++) {
        const v = x[o];
        dot += v * queries[at + d];
        norm += v * v;
      }
      return norm === 0 ? 0 : dot / Math.sqrt(norm);
    };
  }
  const stored = decodeVectors(bytes, rows.dtype, dim); // [candidates, dim]
  return (c, queries, at) => {
    let sim = 0;
    for (let d = 0; d < dim; d++) sim += stored[c * dim + d] * queries[at + d];
    return sim;
  };
}
