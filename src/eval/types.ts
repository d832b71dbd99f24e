export { type Bucket, type BucketEdges, LIFT_BUCKETS } from '../data/types.ts';

/**
 * Evaluation result. Accuracies are top-1 in percent. `overall` is the sample-level accuracy;
 * `many`/`medium`/`few` are the mean of per-class accuracies of the classes in that bucket (buckets
 * from TRAINING counts, as LIFT does); NaN-free: an empty bucket reports null.
 */
export interface EvalMetrics {
  overall: number;
  many: number | null;
  medium: number | null;
  few: number | null;
  /**
   * Balanced accuracy: mean per-class accuracy (percent) over the classes present in the test set. Unlike
   * `overall` (per sample) it weighs every class equally. Optional only because results written before it existed lack it.
   */
  balanced?: number;
  /** Expected calibration error of the top-1 probability, percent, 15 equal-width bins; absent for methods without probabilities. */
  ece?: number;
  /** Macro-averaged F1 in percent over classes present in the test set. */
  macroF1: number;
  /** Lowest per-class accuracy (percent) among classes present in the test set. */
  worstClass: { label: string; accuracy: number };
  /** Per-class accuracy in percent, for classes present in the test set. */
  perClass: Record<string, number>;
  /** Number of classes in each bucket (of classes present in the test set). */
  buckets: { many: number; medium: number; few: number };
  /** Test samples evaluated. */
  n: number;
}
