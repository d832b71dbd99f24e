import type { Encoder } from '../encoders/types.ts';
import type { KnowledgeBase, Neighbour } from '../kb/types.ts';

/** Model variants (ablations and the RAC-like baseline) selectable with --variant. */
export const VARIANTS = ['full', 'no-text', 'no-image', 'image-only', 'mlp-only'] as const;
export type Variant = (typeof VARIANTS)[number];

/** One query's prediction with the evidence behind it. */
export interface Prediction {
  /** Class index of the top-1 prediction. */
  label: number;
  /** Softmax probabilities over classes: [C]. */
  probs: Float32Array;
  /** The k neighbours used (empty for mlp-only), best first. */
  neighbours: Neighbour[];
  /** Per-neighbour attention weight in the fusion (mean over layers and heads, normalised to sum 1): [k]. */
  attention: Float32Array;
  /** Adaptive variant only: the learned weight of the retrieval branch in [0, 1]. */
  gate?: number;
}

/** The leakage guard at inference: per query, KB pair ids and the query's own image path (pairs with that `source` are dropped). */
export interface PredictOptions {
  excludeIds?: readonly (ReadonlySet<string> | undefined)[];
  /** Absolute image path per query: a query never sees a KB pair made from its own picture (evaluating on training images, audit). */
  sources?: readonly (string | undefined)[];
}

/** A trained run reopened for inference: the model plus the KB and encoder it was trained with. */
export interface LoadedRun {
  dir: string;
  /** Resolved training config (saved as RUN_DIR/config.json). */
  config: Record<string, unknown> & { variant: Variant; k: number; seed: number };
  classes: string[];
  /** Training images per class, in class order (for long-tail buckets). */
  trainCounts: number[];
  kb: KnowledgeBase;
  encoder: Encoder;
  /**
   * Predict from query embeddings [n, dim] (encoded with `encoder`): retrieves neighbours from the
   * KB as it is now (so KB edits apply without retraining) and runs both branches.
   */
  predict(embeddings: Float32Array, options?: PredictOptions): Promise<Prediction[]>;
  close(): Promise<void>;
}
