import type { GraphBatch } from './onnx/session.ts';

/** Neighbour vectors looked up by slot: image and text rows [slots, D]. */
export interface NeighbourVectors {
  images: Float32Array;
  texts: Float32Array;
}

/**
 * The model's inputs for n queries, laid out as the graphs expect: z [n, D], the image tokens
 * [z; neighbour images] [n*(k+1), D] and the neighbour texts [n*k, D]. `slots` [n*k] names each
 * query's neighbours by rank as rows of `vectors`; a slot < 0 (fewer than k neighbours) leaves its
 * rows zero. Without `vectors` (mlp-only) the token inputs are empty.
 */
export function assembleInputs(query: Float32Array, n: number, D: number, k: number, slots: ArrayLike<number>, vectors?: NeighbourVectors): GraphBatch {
  const imageTokens = new Float32Array(vectors ? n * (k + 1) * D : 0); // [n, k+1, D]
  const neighbourTexts = new Float32Array(vectors ? n * k * D : 0); // [n, k, D]
  if (vectors) {
    for (let b = 0; b < n; b++) {
      imageTokens.set(query.subarray(b * D, (b + 1) * D), b * (k + 1) * D);
      for (let j = 0; j < k; j++) {
        const u = slots[b * k + j];
        if (u < 0) continue;
        imageTokens.set(vectors.images.subarray(u * D, (u + 1) * D), (b * (k + 1) + 1 + j) * D);
        neighbourTexts.set(vectors.texts.subarray(u * D, (u + 1) * D), (b * k + j) * D);
      }
    }
  }
  return { n, query, imageTokens, neighbourTexts };
}
