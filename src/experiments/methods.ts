import type { Variant } from '../model/config.ts';
import type { MethodResult } from '../eval/results.ts';

/** A method of the comparison: trained RetFormer variants (and MLP-only / RAC-like), or a training-free baseline. */
export interface MethodSpec {
  key: string;
  name: string;
  kind: MethodResult['kind'];
  /** How to train it with `retformer train`; absent for training-free baselines. */
  train?: { variant: Variant; adaptive?: boolean };
}

/** Every method, in the order of the comparison table (the paper's: baselines, then ablations, then the full model). */
export const METHODS: readonly MethodSpec[] = [
  { key: 'mlp-only', name: 'MLP only', kind: 'baseline', train: { variant: 'mlp-only' } },
  { key: 'knn-vote', name: 'kNN vote', kind: 'baseline' },
  { key: 'image-only', name: 'Image-only retrieval (RAC-like)', kind: 'baseline', train: { variant: 'image-only' } },
  { key: 'zero-shot', name: 'Zero-shot', kind: 'baseline' },
  { key: 'no-text', name: 'RetFormer no-text', kind: 'retformer', train: { variant: 'no-text' } },
  { key: 'no-image', name: 'RetFormer no-image', kind: 'retformer', train: { variant: 'no-image' } },
  { key: 'full', name: 'RetFormer full', kind: 'retformer', train: { variant: 'full' } },
  { key: 'adaptive', name: 'RetFormer adaptive', kind: 'retformer', train: { variant: 'full', adaptive: true } },
];

export const METHOD_KEYS: readonly string[] = METHODS.map((m) => m.key);
