/** Retrieval measurements for encoder comparisons (exact cosine search on L2-normalised rows). */

/** For each query row, the indices of its k most similar base rows (by dot product), best first. */
export function topK(queries: Float32Array, base: Float32Array, dim: number, k: number): Int32Array[] {
  const nq = queries.length / dim;
  const nb = base.length / dim;
  const out: Int32Array[] = [];
  const scores = new Float32Array(nb);
  for (let q = 0; q < nq; q++) {
    const qo = q * dim;
    for (let b = 0; b < nb; b++) {
      let s = 0;
      const bo = b * dim;
      for (let j = 0; j < dim; j++) s += queries[qo + j] * base[bo + j];
      scores[b] = s;
    }
    const idx = Array.from({ length: nb }, (_, i) => i);
    idx.sort((a, z) => scores[z] - scores[a] || a - z);
    out.push(Int32Array.from(idx.slice(0, k)));
  }
  return out;
}

/** Share of queries whose top-1 neighbour has the same key. */
export function top1Agreement(neighbours: readonly Int32Array[], queryKeys: readonly string[], baseKeys: readonly string[]): number {
  let hit = 0;
  neighbours.forEach((nb, q) => {
    if (baseKeys[nb[0]] === queryKeys[q]) hit++;
  });
  return hit / Math.max(1, neighbours.length);
}

/** Share of queries with at least one base item of the same key among their first k neighbours. */
export function recallAtK(neighbours: readonly Int32Array[], queryKeys: readonly string[], baseKeys: readonly string[], k: number): number {
  let hit = 0;
  neighbours.forEach((nb, q) => {
    for (let i = 0; i < Math.min(k, nb.length); i++) {
      if (baseKeys[nb[i]] === queryKeys[q]) {
        hit++;
        return;
      }
    }
  });
  return hit / Math.max(1, neighbours.length);
}

/** L2-normalise rows in place after subtracting the column mean of `reference` (centred cosine). */
export function centreAndNormalize(rows: Float32Array, dim: number, mean: Float32Array): Float32Array {
  for (let off = 0; off < rows.length; off += dim) {
    let s = 0;
    for (let j = 0; j < dim; j++) {
      rows[off + j] -= mean[j];
      s += rows[off + j] * rows[off + j];
    }
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let j = 0; j < dim; j++) rows[off + j] *= inv;
  }
  return rows;
}
