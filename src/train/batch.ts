import { assembleInputs } from '../model/inputs.ts';
import type { Rng } from '../util/rng.ts';
import { smoothedOneHot } from './loss.ts';
import type { NeighbourTable } from './retrieval.ts';
import type { HostBatch } from './trainer.ts';

/** Everything one training pass reads, held on the host (the encoders are frozen, retrieval is precomputed). */
export interface TrainingData {
  n: number;
  /** Encoder dim D. */
  dim: number;
  k: number;
  classes: number;
  /** Training image embeddings z: [N, D]. */
  embeddings: Float32Array;
  /** Class index per sample: [N]. */
  labels: Int32Array;
  /** Neighbours per sample (absent for mlp-only). */
  table?: NeighbourTable;
  /** Similarity bias: each sample's neighbours' similarities by rank, [N, k] (0 where none). */
  similarities?: Float32Array;
}

/** Mixup of one batch: x_i <- lambda x_i + (1 - lambda) x_partner[i], for z, neighbour rows (by rank) and targets alike. */
export interface MixupPlan {
  lambda: number;
  /** A permutation of batch positions. */
  partner: number[];
}

/** Draw a Mixup plan for a batch of `n` (Beta(alpha, alpha), seeded permutation); undefined when alpha is 0. */
export function drawMixup(rng: Rng, n: number, alpha: number): MixupPlan | undefined {
  if (alpha <= 0) return undefined;
  const lambda = rng.beta(alpha);
  const partner = rng.shuffle(Array.from({ length: n }, (_, i) => i));
  return { lambda, partner };
}

/** Build the host batch for the given sample indices; mixes consistently when a plan is given. */
export function assembleBatch(data: TrainingData, indices: readonly number[], labelSmoothing: number, mixup?: MixupPlan): HostBatch {
  const { dim: D, k, classes: C } = data;
  const n = indices.length;
  const query = new Float32Array(n * D); // [n, D]
  const slots = new Int32Array(data.table ? n * k : 0); // [n, k] rows of the neighbour table
  indices.forEach((s, b) => {
    query.set(data.embeddings.subarray(s * D, (s + 1) * D), b * D);
    if (data.table) slots.set(data.table.index.subarray(s * k, (s + 1) * k), b * k);
  });
  const { imageTokens, neighbourTexts, neighbourLabels } = assembleInputs(query, n, D, k, slots, data.table, data.table?.labels ? C : undefined);
  const targets = smoothedOneHot(
    indices.map((s) => data.labels[s]),
    C,
    labelSmoothing,
  );
  const batch: HostBatch = { n, query, imageTokens, neighbourTexts, targets, ...(neighbourLabels ? { neighbourLabels } : {}) };
  if (data.similarities) {
    const sims = new Float32Array(n * k); // [n, k]
    for (const [b, s] of indices.entries()) sims.set(data.similarities.subarray(s * k, (s + 1) * k), b * k);
    batch.neighbourSims = sims;
  }
  return mixup ? mixBatch(batch, mixup) : batch;
}

function mixRows(x: Float32Array, n: number, plan: MixupPlan): Float32Array {
  if (x.length === 0) return x;
  const per = x.length / n; // floats per sample
  const out = new Float32Array(x.length);
  const a = plan.lambda;
  const b = 1 - a;
  for (let i = 0; i < n; i++) {
    const p = plan.partner[i];
    const oi = i * per;
    const op = p * per;
    for (let t = 0; t < per; t++) out[oi + t] = a * x[oi + t] + b * x[op + t];
  }
  return out;
}

/** Apply a Mixup plan to a built batch (z, neighbour image rows, text rows and labels, targets: same lambda and partner). */
export function mixBatch(batch: HostBatch, plan: MixupPlan): HostBatch {
  const n = batch.n;
  return {
    n,
    query: mixRows(batch.query, n, plan),
    imageTokens: mixRows(batch.imageTokens, n, plan),
    neighbourTexts: mixRows(batch.neighbourTexts, n, plan),
    targets: mixRows(batch.targets, n, plan),
    ...(batch.neighbourLabels ? { neighbourLabels: mixRows(batch.neighbourLabels, n, plan) } : {}),
    ...(batch.neighbourSims ? { neighbourSims: mixRows(batch.neighbourSims, n, plan) } : {}),
  };
}
