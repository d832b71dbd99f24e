import type { GraphBatch } from './onnx/session.ts';

/** Neighbour vectors looked up by slot: image and text rows [slots, D]. */
export interface NeighbourVectors {
  images: Float32Array;
  texts: Float32Array;
  /** Class index of each slot's label among the model's classes, -1 for none or an unknown label: [slots] (label memory). */
  labels?: Int32Array;
}

/** Class index per pair label (-1: no label, or not one of `classes`). */
export function labelIndexOf(labels: readonly (string | undefined)[], classes: readonly string[]): Int32Array {
  const index = new Map(classes.map((c, i) => [c, i]));
  return Int32Array.from(labels, (l) => (l === undefined ? -1 : (index.get(l) ?? -1)));
}

/**
 * The model's inputs for n queries, laid out as the graphs expect: z [n, D], the image tokens
 * [z; neighbour images] [n*(k+1), D] and the neighbour texts [n*k, D]. `slots` [n*k] names each
 * query's neighbours by rank as rows of `vectors`; a slot < 0 (fewer than k neighbours) leaves its
 * rows zero. Without `vectors` (mlp-only) the token inputs are empty. With `labelClasses` C (label
 * memory) also the neighbour labels as one-hot rows [n*k, C] (from `vectors.labels`; -1: a zero row).
 */
export function assembleInputs(query: Float32Array, n: number, D: number, k: number, slots: ArrayLike<number>, vectors?: NeighbourVectors, labelClasses?: number): GraphBatch {
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
  if (labelClasses === undefined) return { n, query, imageTokens, neighbourTexts };
  if (vectors && !vectors.labels) throw new Error('label memory needs the neighbours\' labels');
  return { n, query, imageTokens, neighbourTexts, neighbourLabels: oneHotLabels(n * k, slots, vectors?.labels, labelClasses) };
}

/** Each slot's label as a one-hot row over C classes ([count, C]; a zero row for a slot < 0 or a label index -1 / out of range). */
export function oneHotLabels(count: number, slots: ArrayLike<number>, labels: Int32Array | undefined, C: number): Float32Array {
  const out = new Float32Array(count * C); // [count, C]
  if (!labels) return out;
  for (let i = 0; i < count; i++) {
    const u = slots[i];
    const c = u < 0 ? -1 : labels[u];
    if (c >= 0 && c < C) out[i * C + c] = 1;
  }
  return out;
}

/** Rows of `rows` ([r, D], f16 bits) laid out by slot: [slots.length, D], zero (+0.0) where a slot is < 0. */
export function halfRowsBySlot(rows: Uint16Array, slots: ArrayLike<number>, D: number): Uint16Array {
  const out = new Uint16Array(slots.length * D); // [count, D]
  for (let i = 0; i < slots.length; i++) {
    const u = slots[i];
    if (u >= 0) out.set(rows.subarray(u * D, (u + 1) * D), i * D);
  }
  return out;
}
